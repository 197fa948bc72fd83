"""Chat modes: knowledge-base chat (RAG) and plain chat with memory."""
