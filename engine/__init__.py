"""billing-engine: a billing ecosystem beside the product, driven by declared rules."""

__version__ = "0.1.0"
