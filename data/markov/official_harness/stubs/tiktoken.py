"""Stub: the official model builds a GPT-2 tokenizer it never uses (and would download it)."""
def get_encoding(name):
    return None
