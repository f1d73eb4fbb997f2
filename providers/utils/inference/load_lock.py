"""One lock for model loads in this process: loads take turns.

Loads run in worker threads, and more than one provider may load at once (a chat
model and an embedding model at start-up). Two threads importing the modules of
torch or transformers for the first time at the same moment can each hold a module
lock the other needs; Python breaks that deadlock by handing one thread a partly
initialised module, and its import fails with "cannot import name ... (most likely
due to a circular import)". transformers' ``from_pretrained`` also patches torch
globally while it builds a model. So every load that imports torch or transformers
(a transformers or sentence-transformers model, a Meta checkpoint's conversion)
holds this lock; requests to a model already loaded never take it. llama.cpp's
loads do not: they import neither, and need not wait for one that does.
"""

from __future__ import annotations

import threading

#: re-entrant: a Meta checkpoint's conversion and the load that follows run in one thread
MODEL_LOAD_LOCK = threading.RLock()
