"""The app's view layer: what the Streamlit pages share and show.

`fer` computes (faces, predictions, explanations, metrics); this package turns its results into what a
page lays out: sentences, tables, charts, HTML and Markdown, cached resources and shared widgets.
Nothing in `fer` imports from here.
"""
