"""The Gradio Space's adapter between ``app.py`` (the UI wiring) and the ``style_transfer`` engine.

- ``params``: the ``/stylize`` endpoint's parameters in order, with their components (one table);
- ``request``: an endpoint call's values checked into a ``Request`` (or a clear ``gr.Error``);
- ``guards``: Gradio's own input handling made to answer like the app (uploads untouched, named range errors);
- ``stream``: frames to the values the outputs show;
- ``stop``: what Stop leaves: the latest image as the result, with its download;
- ``errors``: how failures are answered (expected ones, and anything unexpected);
- ``zerogpu``: how many GPU seconds to ask ZeroGPU for;
- ``files``: the downloadable result file;
- ``limits``: the Space's limits (uploads, previews, GPU time, queue, cache).

The engine never imports this package; this package imports gradio, pandas and the engine.
"""
