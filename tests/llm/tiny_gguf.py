"""A tiny GGUF file written by the gguf package (the format's reference writer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_tiny_gguf(path: Path, *, context: int = 2048, layers: int = 2) -> Path:
    """A 'llama' GGUF: 64 wide, 4 heads (2 KV), Q4_K_M file type, a 3-token vocabulary,
    and two tensors holding 8 * 64 + 64 parameters."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("Tiny Test")
    writer.add_size_label("1K")
    writer.add_context_length(context)
    writer.add_block_count(layers)
    writer.add_embedding_length(64)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    writer.add_token_list(["<s>", "hello", "世界"])
    writer.add_tensor("token_embd.weight", np.zeros((8, 64), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones(64, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
