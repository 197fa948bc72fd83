"""What is kept: vector stores (``store.base.VectorStore``), BM25, the catalog, conversations.

Nothing is imported here, so the catalog can be opened without numpy or FAISS.
"""
