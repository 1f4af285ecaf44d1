"""subclassbench: how much subclass structure do an encoder's layers keep?"""

__version__ = "0.1.0"
