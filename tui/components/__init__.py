"""Self-contained drawing widgets of the explorer, fed with plain Python / numpy data.

Each widget lives in its own module and is imported from there (e.g.
`from tui.components.heatmap import Heatmap`). This package imports nothing heavy on purpose:
only `tui.components.plotting` imports textual-plotext / plotext, and nothing here imports torch.
"""
