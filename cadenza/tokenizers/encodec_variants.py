"""Inference-only EnCodec encoders: the variants `cadenza tokenize --optimize` chooses from.

The reference is eager fp32: transformers' own `EncodecModel.encode`, one clip at a time. Every other
variant runs a private copy of encoder + quantizer with weight norm folded into plain conv weights and
conv padding computed in Python ints (`plain_encoder`):

- `fold`: that copy, eagerly. Same float ops as eager, so the same codes.
- `trace`: the copy traced and frozen per input length (TorchScript). Same codes as eager.
- `onnx`: the copy's encoder exported to ONNX per input length, run by ONNX Runtime (the `onnx` extra);
  the quantizer stays in torch. ONNX Runtime's own conv kernels round differently, so codes may differ
  from eager where the residual quantizer is near a tie: none did on a trained `demo` codec, 5% did on
  the 24 kHz architecture with random weights. The same run to run for a given thread count.

`benchmarks/bench_tokenize.py` measures these side by side with the candidates that did not make it:
torch.compile (no CPU time saved, 5% of codes changed, minutes of warm-up) and dynamic int8 quantization
of the LSTM (3-49% of codes changed). A variant whose codes may differ from eager's gets its own
tokenizer fingerprint (the weights' fingerprint + "-" + variant).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from cadenza.tokenizers.encodec_variant_names import VARIANTS

TRACE_CACHE = 8  # traces (or ONNX sessions) kept per tokenizer (clips are mostly 10 s, so mostly one)


class PlainConv1d(nn.Module):
    """transformers' EncodecConv1d with its weight norm folded and its padding in Python ints.

    Same pad and conv as the original; what goes is the tensor arithmetic on lengths (it breaks
    torch.compile graphs and ONNX exports) and the full copy a zero-width reflect pad makes (the 1x1 convs
    of EnCodec's residual blocks pad by nothing).
    """

    def __init__(self, original: nn.Module) -> None:
        super().__init__()
        if getattr(original, "norm_type", "weight_norm") != "weight_norm":
            raise ValueError("only weight-norm EnCodec convs can be folded")
        self.conv = original.conv
        if parametrize.is_parametrized(self.conv, "weight"):
            parametrize.remove_parametrizations(self.conv, "weight", leave_parametrized=True)
        self.causal = bool(original.causal)
        self.pad_mode = str(original.pad_mode)
        self.stride = int(self.conv.stride[0])
        self.kernel = (int(self.conv.kernel_size[0]) - 1) * int(self.conv.dilation[0]) + 1
        self.padding_total = self.kernel - self.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1 and self.padding_total == 0:  # 1x1 conv: every pad is zero wide
            return self.conv(x)
        # a plain int: traces and ONNX exports are made per input length, so it is a constant there (traced
        # size arithmetic would become ONNX integer Div, which truncates where Python floors)
        length = int(x.shape[-1])
        extra = 0
        if self.stride > 1:  # with stride 1 the padded length is always the input length
            frames = -(-(length - self.kernel + self.padding_total) // self.stride)
            extra = frames * self.stride + self.kernel - self.padding_total - length
        if self.causal:
            left, right = self.padding_total, extra
        else:
            right = self.padding_total // 2
            left, right = self.padding_total - right, right + extra
        return self.conv(_pad1d(x, left, right, self.pad_mode))


def _pad1d(x: torch.Tensor, left: int, right: int, mode: str) -> torch.Tensor:
    """transformers' EncodecConv1d._pad1d: reflect padding with zeros first when the input is too short."""
    if mode != "reflect":
        return nn.functional.pad(x, (left, right), mode)
    length = int(x.shape[-1])
    extra_pad = 0
    if length <= max(left, right):
        extra_pad = max(left, right) - length + 1
        x = nn.functional.pad(x, (0, extra_pad))
    padded = nn.functional.pad(x, (left, right), "reflect")
    return padded[..., : padded.shape[-1] - extra_pad]


class PlainEncoder(nn.Module):
    """Encoder + residual quantizer of a private copy of `model`: audio [B, 1, N] -> codes [K, B, T]."""

    def __init__(self, model: Any, bandwidth: float, bf16: bool = False) -> None:
        super().__init__()
        # a fresh copy: deepcopy would share parametrization state with the original model
        clone = type(model)(model.config)
        clone.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
        self.bf16 = bf16
        self.encoder = clone.encoder.eval()
        self.quantizer = clone.quantizer.eval()
        self.bandwidth = float(bandwidth)
        conv_type = type(clone.encoder.layers[0])
        for parent in list(self.encoder.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is conv_type:
                    setattr(parent, name, PlainConv1d(child))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.bf16:
            return self.quantizer.encode(self.encoder(x), self.bandwidth)
        # bf16: the encoder under autocast, the quantizer's nearest-code search in fp32
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            embeddings = self.encoder(x)
        return self.quantizer.encode(embeddings.float(), self.bandwidth)


def plain_encoder(model: Any, bandwidth: float, *, device: Any = "cpu", bf16: bool = False) -> PlainEncoder:
    return PlainEncoder(model, bandwidth, bf16).eval().to(device)


class TracedEncoder:
    """`PlainEncoder` traced and frozen once per input shape (a trace bakes in that length's padding)."""

    def __init__(self, plain: PlainEncoder) -> None:
        self.plain = plain
        self.traced: dict[tuple[int, ...], Any] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(int(n) for n in x.shape)
        if shape not in self.traced:
            if len(self.traced) >= TRACE_CACHE:
                self.traced.pop(next(iter(self.traced)))
            with torch.no_grad(), warnings.catch_warnings():
                # shape checks baked in as constants are exactly what a per-length trace wants
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                traced = torch.jit.trace(self.plain, torch.zeros(shape, device=x.device), check_trace=False)
                self.traced[shape] = torch.jit.freeze(traced.eval())
        return self.traced[shape](x)


class OnnxEncoder:
    """The `PlainEncoder`'s encoder exported to ONNX per input length and run by ONNX Runtime's CPU
    provider with torch's thread count; the residual quantizer stays in torch. Needs the `onnx` extra."""

    def __init__(self, plain: PlainEncoder) -> None:
        try:
            import onnxruntime
        except ImportError as exc:
            raise ImportError("--optimize onnx needs ONNX Runtime: pip install 'cadenza[onnx]'") from exc
        self.ort = onnxruntime
        self.plain = plain
        self.sessions: dict[int, Any] = {}

    def session(self, shape: tuple[int, ...]):
        if shape not in self.sessions:
            import io

            if len(self.sessions) >= TRACE_CACHE:
                self.sessions.pop(next(iter(self.sessions)))
            buf = io.BytesIO()
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the legacy exporter's notices; lengths are fixed per export
                torch.onnx.export(self.plain.encoder, torch.zeros(shape), buf, dynamo=False,
                                  input_names=["audio"], output_names=["embeddings"])
            options = self.ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            options.inter_op_num_threads = 1
            self.sessions[shape] = self.ort.InferenceSession(buf.getvalue(), options,
                                                             providers=["CPUExecutionProvider"])
        return self.sessions[shape]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        embeddings = self.session(tuple(int(n) for n in x.shape)).run(None, {"audio": x.cpu().numpy()})[0]
        return self.plain.quantizer.encode(torch.from_numpy(embeddings), self.plain.bandwidth)


def variant_encoder(model: Any, bandwidth: float, variant: str, *, device: Any = "cpu", bf16: bool = False):
    """A callable audio [B, 1, N] -> codes [K, B, T] for one of VARIANTS (bf16: `fold` only)."""
    if variant not in VARIANTS:
        raise ValueError(f"optimize must be one of {VARIANTS}, got {variant!r}")
    if bf16 and variant != "fold":
        raise ValueError("a bf16 encode runs the folded copy eagerly (optimize=fold)")
    if variant == "onnx" and torch.device(device).type != "cpu":
        raise ValueError("optimize=onnx runs on the CPU (ONNX Runtime's CPU provider); use trace on a GPU")
    if variant == "eager":
        return lambda x: model.encode(x, bandwidth=bandwidth).audio_codes[0].transpose(0, 1)
    plain = plain_encoder(model, bandwidth, device=device, bf16=bf16)
    if variant == "fold":
        return plain
    if variant == "trace":
        return TracedEncoder(plain)
    return OnnxEncoder(plain)
