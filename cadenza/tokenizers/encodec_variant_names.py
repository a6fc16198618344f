"""The EnCodec encoder variants `cadenza tokenize --optimize` chooses from, and the default one.

Plain names, apart from encodec_variants (which imports torch and builds the encoders; its docstring
says what each variant does), so the CLI can check the option without that slow import.
"""

VARIANTS = ("eager", "fold", "trace", "onnx")
EXACT = frozenset({"eager", "fold", "trace"})  # the same float ops as eager fp32: the same codes (tested)
DEFAULT_OPTIMIZE = "trace"
