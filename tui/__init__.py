"""llm-internals explorer: the Textual UI; it draws what the engine sends and never imports torch."""
