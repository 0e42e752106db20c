# Jupyter configuration of this project; the Makefile points JUPYTER_CONFIG_DIR here.
# These machines often run as root, where Jupyter refuses to start a server unless told.
# Allowing it here lets `make lab` (and any server started with this config) work for
# root and non-root users alike.
c = get_config()  # noqa: F821 - provided by Jupyter when it loads this file
c.ServerApp.allow_root = True
c.ServerApp.open_browser = False
