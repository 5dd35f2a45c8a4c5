"""The local web page (Gradio)."""
