"""facegate: face-recognition door access.

The library every service shares: the face engine (``facegate.engine``), the
embedding math (``facegate.core.matching``), typed messages, settings, adapters
and the error tree. Nothing here touches TensorFlow, Redis or the object
store at import time; services wire what they need in one composition root.
"""

__version__ = "0.1.0"
