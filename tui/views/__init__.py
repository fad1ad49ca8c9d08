"""The explorer's main-area views: each asks the worker for its data and draws it with tui.components."""
