"""BERT4Rec: next-item recommendation from who-watched-what-when logs."""

__version__ = "0.1.0"
