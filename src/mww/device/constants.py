"""The ESPHome micro_wake_word device contract: the one home of every device constant.

Every other module imports these names; no number of the contract is written twice.
See ARCHITECTURAL_CONSTITUTION.md for why each value is fixed.
"""

from __future__ import annotations

# --- Audio front end (runs on the ESP32, reproduced here by pymicro-features) ---
SAMPLE_RATE_HZ = 16000
SAMPLE_WIDTH_BYTES = 2  # 16-bit PCM
MEL_BINS = 40
WINDOW_SIZE_MS = 30
WINDOW_STEP_MS = 10
LOWER_BAND_HZ = 125.0
UPPER_BAND_HZ = 7500.0

WINDOW_SAMPLES = SAMPLE_RATE_HZ * WINDOW_SIZE_MS // 1000
STEP_SAMPLES = SAMPLE_RATE_HZ * WINDOW_STEP_MS // 1000

# Front-end settings compiled into the device (and into pymicro-features).
NOISE_REDUCTION = {
    "smoothing_bits": 10,
    "even_smoothing": 0.025,
    "odd_smoothing": 0.06,
    "min_signal_remaining": 0.05,
}
PCAN_GAIN_CONTROL = {"enabled": True, "strength": 0.95, "offset": 80.0, "gain_bits": 21}
LOG_SCALE = {"enabled": True, "scale_shift": 6}

# --- Feature scale ---
# The front end yields uint16 values; training uses value * FEATURE_SCALE (value / 25.6).
FEATURE_SCALE = 0.0390625
FEATURE_MAX_FLOAT = 26.0  # the float range the int8 input covers: [0, 26]
FEATURE_UINT16_MAX = 65535

# --- Model input quantization ---
INPUT_DTYPE = "int8"
INPUT_QUANT_LEVELS = 255
INPUT_SCALE = FEATURE_MAX_FLOAT / INPUT_QUANT_LEVELS
INPUT_ZERO_POINT = -128
INT8_MIN = -128
INT8_MAX = 127
# The device's integer conversion of a uint16 front-end value v:
#   q = (v * DEVICE_QUANT_MULTIPLIER + DEVICE_QUANT_ROUNDING) // DEVICE_QUANT_DIVISOR + INPUT_ZERO_POINT
DEVICE_QUANT_MULTIPLIER = 256
DEVICE_QUANT_ROUNDING = 333
DEVICE_QUANT_DIVISOR = 666

# --- Model output quantization ---
OUTPUT_DTYPE = "uint8"
OUTPUT_SCALE = 1.0 / 256.0
OUTPUT_ZERO_POINT = 0
OUTPUT_UINT8_MAX = 255

# --- Streaming ---
STREAMING_STRIDE = 3  # feature frames per model invocation (one call every 30 ms)
EXPECTED_SUBGRAPHS = 2  # main + variable initialisation (CALL_ONCE)
MAX_RESOURCE_VARIABLES = 20

# --- Detection on the device (shared/ESPHOME_CONTRACT.md, "Detection on the device") ---
# ESPHome's MIN_SLICES_BEFORE_DETECTION (micro_wake_word/streaming_model.h): after start-up and after
# each detection the detector stays disarmed for this many 10 ms feature slices (older releases
# used 74; current ones 100). Current ESPHome only counts a slice toward it while the newest
# probability is below the cutoff, so one utterance gives one event. mww.device.detection reproduces this.
DETECTION_REFRACTORY_SLICES = 100

# --- Ops that ESPHome registers; anything else fails at tensor allocation ---
ALLOWED_OPS = frozenset(
    {
        "CALL_ONCE",
        "VAR_HANDLE",
        "RESHAPE",
        "READ_VARIABLE",
        "STRIDED_SLICE",
        "CONCATENATION",
        "ASSIGN_VARIABLE",
        "CONV_2D",
        "MUL",
        "ADD",
        "MEAN",
        "FULLY_CONNECTED",
        "LOGISTIC",
        "QUANTIZE",
        "DEPTHWISE_CONV_2D",
        "AVERAGE_POOL_2D",
        "MAX_POOL_2D",
        "PAD",
        "PACK",
        "SPLIT_V",
    }
)

# --- Manifest ---
MANIFEST_VERSION = 2
MANIFEST_TYPE = "micro"
FEATURE_STEP_SIZE_MS = WINDOW_STEP_MS
MINIMUM_ESPHOME_VERSION = "2024.7.0"

# Hardware config keys that the device fixes; config validation refuses any other value.
IMMUTABLE_HARDWARE = {
    "sample_rate_hz": SAMPLE_RATE_HZ,
    "mel_bins": MEL_BINS,
    "window_size_ms": WINDOW_SIZE_MS,
    "window_step_ms": WINDOW_STEP_MS,
}


def frames_for_duration_ms(duration_ms: float) -> int:
    """Number of front-end frames the device produces for `duration_ms` of audio."""
    samples = round(duration_ms * SAMPLE_RATE_HZ / 1000)
    if samples < WINDOW_SAMPLES:
        return 0
    return (samples - WINDOW_SAMPLES) // STEP_SAMPLES + 1
