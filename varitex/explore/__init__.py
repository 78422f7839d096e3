"""`varitex-explore`: VariTex in the browser (``pip install -e ".[app]"``).

- `session`: the scene (identity, shape, expression, pose, view options) and every action on it, with a
  cache of decoded neural textures; plain Python, tested without a browser.
- `photo`: your photo -> its identity code and fitted geometry, through varitex-preprocess's and
  varitex-invert's library functions (the optional extra ``preprocess``).
- `app`: the Gradio page that wires widgets to those actions, and the server.
- `__main__`: the command line.
"""
