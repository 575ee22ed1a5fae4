"""A web page for the models of this project: ``python -m saga_hsmad.app --ckpt CKPT [--ckpt CKPT2 ...]``.

``handlers`` holds what each tab does as plain functions (the inference code of ``sample.py``), ``page`` the
gradio layout, ``__main__`` the command line and the server settings (localhost, no analytics, a temporary
upload folder with a size limit).
"""
