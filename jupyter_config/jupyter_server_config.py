# Jupyter configuration of this project; the Makefile points JUPYTER_CONFIG_DIR here.
# These machines often run as root, where Jupyter refuses to start a server unless told.
# Allowing it here lets `make lab` (and any server started with this config) work for
# root and non-root users alike.
import pathlib

c = get_config()  # noqa: F821 - provided by Jupyter when it loads this file
c.ServerApp.allow_root = True
c.ServerApp.open_browser = False
# JupyterLab opens Markdown (the book's MyST chapters) as notebooks through jupytext; Binder
# gets the same setting from postBuild.
c.LabServerApp.app_settings_dir = str(pathlib.Path(__file__).parent / "lab-settings")
