"""Export a sentence-transformers model's transformer to ONNX, and check it against sentence-transformers.

    python -m index.analysis.onnx_export MODEL_DIR TARGET_DIR

Run by :func:`index.analysis.onnx_model.export_onnx` in a child process: this is the only place the light runtime
loads torch. The graph takes ``input_ids``, ``attention_mask`` and ``token_type_ids`` (batch and sequence axes
dynamic) and gives ``token_embeddings``; it is saved as ``model.onnx`` with its weights in ``model.onnx.data``.
Pooling and normalisation are done in numpy by :class:`~index.analysis.onnx_model.OnnxEncoder`. Before it exits 0
it encodes probe texts (one word up to past ``max_seq_length``, in batches of different sizes) both ways and fails
if any cosine is below :data:`MIN_COSINE`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from index.analysis.onnx_model import INPUTS, MODEL_FILE, OUTPUT, WEIGHTS_FILE, ModelLayout, OnnxEncoder

#: The least cosine between a probe's ONNX vector and its sentence-transformers vector for the export to count.
MIN_COSINE = 0.99999
#: ONNX opset of the graph.
OPSET = 17


def _probes() -> list[str]:
    """Return texts from one word to well past 256 tokens, with and without padding in their batch."""
    sentence = "the harbour town counted its boats, ships and fishermen before the storm reached the coast"
    words = sentence.replace(",", " ,").split(" ")
    texts = ["Hello.", "", "  Who denied the claim?  ", "Ankara has denied the claim, the ministry said on Monday."]
    texts += [" ".join(words[i % len(words)] for i in range(n)) for n in (7, 40, 130, 300, 700)]
    return texts


def export(directory: Path, target: Path) -> float:
    """Write the ONNX graph of the model in ``directory`` into the directory ``target``; return the least cosine."""
    import onnx
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    layout = ModelLayout.read(directory)
    model = AutoModel.from_pretrained(str(directory)).eval()

    class TokenEmbeddings(torch.nn.Module):
        """The transformer, called by keyword (its positional arguments vary between transformers releases)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> Any:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    sample = torch.ones((2, 8), dtype=torch.long)
    axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUTS, OUTPUT)}
    target.mkdir(parents=True, exist_ok=True)
    whole = target / "whole.onnx"
    with torch.no_grad():
        torch.onnx.export(
            TokenEmbeddings(),
            (sample, sample, torch.zeros_like(sample)),
            str(whole),
            input_names=list(INPUTS),
            output_names=[OUTPUT],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    graph = onnx.load(str(whole))
    onnx.save_model(graph, str(target / MODEL_FILE), save_as_external_data=True, location=WEIGHTS_FILE)
    whole.unlink()
    reference = SentenceTransformer(str(directory), device="cpu")
    encoder = OnnxEncoder(layout, target / MODEL_FILE, threads=1)
    texts = _probes()
    worst = 1.0
    for batch_size in (1, 3, 32):
        expected = reference.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
        got = encoder.encode(texts, batch_size=batch_size, progress=False)
        worst = min(worst, float(np.min(np.sum(expected * got, axis=1))))
    if worst < MIN_COSINE:
        raise SystemExit(f"the ONNX graph does not match sentence-transformers (cosine {worst:.6f} < {MIN_COSINE})")
    return worst


def main(argv: list[str] | None = None) -> int:
    """Export ``argv``'s model to its target; return the exit code (1 with one line on standard error)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m index.analysis.onnx_export MODEL_DIR TARGET_DIR", file=sys.stderr)
        return 1
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("sentence_transformers", "transformers", "torch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    worst = export(Path(args[0]), Path(args[1]))
    print(f"exported {args[0]} to {args[1]} (least probe cosine {worst:.7f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
