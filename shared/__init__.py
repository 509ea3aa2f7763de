"""mediamatch's matching core: fetching, sniffing, decoding, fingerprints, alignment, scoring, the envelope.

It imports neither Flask nor Celery; the API (``api/``) and the workers (``worker/``) are thin shims on it.
"""
