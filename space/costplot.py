"""The cost curve's component: a ``gr.LinePlot`` whose value also survives Gradio's example cache."""

from __future__ import annotations

import json
from typing import Any

import gradio as gr


class CostPlot(gr.LinePlot):
    """A line plot that reads its cached-example value back as data.

    Gradio 6.31's plots have no data model, so ``read_from_flag`` hands back the cached value as its JSON text;
    the browser's plot then fails on it (``columns`` of a string) and the whole page stops updating after a click on
    a cached example. The browser draws it as a LinePlot (the block name is LinePlot's, "nativeplot").
    """

    def read_from_flag(self, payload: Any) -> Any:
        """The cached value as the plot's data (a dict with columns and rows), not the text it was stored as."""
        return json.loads(payload) if isinstance(payload, str) else payload
