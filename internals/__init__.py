"""llm-internals engine: open a Hugging Face causal LM lazily and describe it exactly.

This package never imports textual. Importing it is cheap: torch and transformers are imported by the
modules that need them, when they are first used.
"""

__version__ = "0.1.0"
