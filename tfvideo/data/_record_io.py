"""TFRecord files of video SequenceExamples, written without TensorFlow.

`tfvideo-prepare`'s worker processes convert videos with this module so that they never
import TensorFlow (whose libraries alone hold ~885 MB per process). The bytes are the
ones `tf.io.TFRecordWriter` and `tf.train.SequenceExample.SerializeToString(
deterministic=True)` give (tests/data/test_record_io.py checks both against TensorFlow):

  record:   length (uint64 LE), masked CRC-32C of those 8 bytes (uint32 LE), data,
            masked CRC-32C of data (uint32 LE);
  data:     the protobuf wire format of the SequenceExample, map entries by sorted key.

CRC-32C (Castagnoli) is computed with numpy: the data is cut into equal chunks whose
CRCs are advanced together, 4 bytes a step, then combined pairwise (a CRC is affine in
its input, so CRC(A + B) is CRC(A) moved through len(B) zero bytes, XOR CRC(B)).
"""

import struct

import numpy as np

from tfvideo.api._export import export_constant

IMAGE_KEY = export_constant("tfvideo.data.IMAGE_KEY", "image/encoded")
FLOW_KEY = export_constant("tfvideo.data.FLOW_KEY", "FORWARD_FLOW/image/encoded")
LABEL_INDEX_KEY = export_constant("tfvideo.data.LABEL_INDEX_KEY", "clip/label/index")
LABEL_STRING_KEY = export_constant("tfvideo.data.LABEL_STRING_KEY", "clip/label/string")
MEDIA_ID_KEY = export_constant("tfvideo.data.MEDIA_ID_KEY", "clip/media_id")
FRAME_RATE_KEY = export_constant("tfvideo.data.FRAME_RATE_KEY", "image/frame_rate")
TMP_MARK = ".tmp-"  # In the names of files being written (`<shard>.tmp-<pid>`); match_shards leaves them out.

_POLY = 0x82F63B78  # CRC-32C, reflected.


def _byte_table():
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_POLY), table >> 1).astype(np.uint32)
    return table


_T0 = _byte_table()
# Slicing by 4: _T[k][b] is byte b's CRC followed by k zero bytes.
_T = [_T0]
for _ in range(3):
    _T.append(((_T[-1] >> 8) ^ _T0[_T[-1] & 0xFF]).astype(np.uint32))
_T_LIST = _T0.tolist()
_CHUNK = 256  # Bytes per chunk of the vectorised pass (a multiple of 4).


def _apply(tables, values):
    """The linear map given by its 4 byte tables, applied to uint32 `values`."""
    return tables[0][values & 0xFF] ^ tables[1][(values >> 8) & 0xFF] ^ tables[2][(values >> 16) & 0xFF] ^ tables[3][values >> 24]


def _tables(columns):
    """Byte tables of the linear map on 32 bits whose image of bit i is `columns[i]`."""
    tables = []
    for byte in range(4):
        table = np.zeros(256, np.uint32)
        for bit in range(8):
            table[1 << bit:2 << bit] = table[:1 << bit] ^ columns[8 * byte + bit]
        tables.append(table)
    return tables


# _SHIFTS[i]: tables moving a raw CRC through 2**i zero bytes.
_SHIFTS = [_tables(((np.uint32(1) << np.arange(32, dtype=np.uint32)) >> 8) ^ _T0[(1 << np.arange(32)) & 0xFF])]


def _shift_tables(i):
    while len(_SHIFTS) <= i:
        previous = _SHIFTS[-1]
        _SHIFTS.append(_tables(_apply(previous, _apply(previous, np.uint32(1) << np.arange(32, dtype=np.uint32)))))
    return _SHIFTS[i]


def _shift(crc, length):
    """A raw CRC (no initial value, no final XOR) moved through `length` zero bytes."""
    value = np.uint32(crc)
    bit = 0
    while length:
        if length & 1:
            value = _apply(_shift_tables(bit), value)
        length >>= 1
        bit += 1
    return int(value)


def _raw_crc(data):
    """Raw CRC-32C (initial value 0, no final XOR) of a uint8 array."""
    head = len(data) % _CHUNK
    crc = 0
    for byte in data[:head].tobytes():
        crc = _T_LIST[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    count = len(data) // _CHUNK
    if not count:
        return crc
    words = data[head:].view("<u4").reshape(count, -1)
    crcs = np.zeros(count, np.uint32)
    for j in range(words.shape[1]):
        value = crcs ^ words[:, j]
        crcs = _T[3][value & 0xFF] ^ _T[2][(value >> 8) & 0xFF] ^ _T[1][(value >> 16) & 0xFF] ^ _T[0][value >> 24]
    level = _CHUNK.bit_length() - 1  # Chunks of 2**level bytes, combined pairwise until one is left.
    while len(crcs) > 1:
        if len(crcs) % 2:  # A leading chunk of zeros has CRC 0 and changes nothing after it.
            crcs = np.concatenate([np.zeros(1, np.uint32), crcs])
        crcs = _apply(_shift_tables(level), crcs[0::2]) ^ crcs[1::2]
        level += 1
    return _shift(crc, count * _CHUNK) ^ int(crcs[0])


def crc32c(data, crc=0):
    """CRC-32C of `data` (bytes-like), continuing from `crc` (the CRC of the bytes before it)."""
    data = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1).view(np.uint8)
    state = _shift(crc ^ 0xFFFFFFFF, len(data)) ^ _raw_crc(data)
    return state ^ 0xFFFFFFFF


def _mask(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def masked_crc32c(data):
    """The CRC TFRecord files store: CRC-32C rotated right by 15 bits plus 0xa282ead8."""
    return _mask(crc32c(data))


class TFRecordFileWriter:
    """Writes records to a local TFRecord file, as `tf.io.TFRecordWriter` (no compression) does.

    `write` takes one bytes-like record or a sequence of bytes-like pieces that make up
    one record (written as they are: no joined copy of a large record).
    """

    _BLOCK = 1 << 22  # Pieces are gathered into blocks of this size for the CRC.

    def __init__(self, path):
        self._file = open(path, "wb")  # noqa: SIM115 -- closed by close() / __exit__.

    def write(self, record):
        pieces = [record] if isinstance(record, (bytes, bytearray, memoryview)) else record
        length = sum(len(p) for p in pieces)
        header = struct.pack("<Q", length)
        self._file.write(header + struct.pack("<I", masked_crc32c(header)))
        crc, block = 0, bytearray()
        for piece in pieces:
            self._file.write(piece)
            if len(piece) >= self._BLOCK:
                crc = crc32c(block, crc) if block else crc
                crc, block = crc32c(piece, crc), bytearray()
                continue
            block += piece
            if len(block) >= self._BLOCK:
                crc, block = crc32c(block, crc), bytearray()
        crc = crc32c(block, crc)
        self._file.write(struct.pack("<I", _mask(crc)))

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _varint(value):
    value &= (1 << 64) - 1  # Negative int64 values: 10 bytes of two's complement, as protobuf writes them.
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_TAG1, _TAG2 = b"\x0a", b"\x12"  # Length-delimited fields 1 and 2.


def _field(number, payload):
    """A length-delimited field: tag, length, payload."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _feature(kind, payload):
    """A `tf.train.Feature` holding a packed or bytes list (`kind`: 1 bytes, 2 float, 3 int64)."""
    return _field(kind, payload)


def _bytes_feature(values):
    return _feature(1, b"".join(_field(1, v) for v in values))


def _context_feature(value):
    kind, values = value
    if kind == "bytes":
        return _bytes_feature(values)
    if kind == "float":
        packed = struct.pack(f"<{len(values)}f", *values)
    else:
        packed = b"".join(_varint(int(v)) for v in values)
    return _feature(2 if kind == "float" else 3, _field(1, packed) if values else b"")


def _map_entry(key, value):
    return _field(1, _field(1, key.encode()) + _field(2, value))


class EncodedExample:
    """A serialized `tf.train.SequenceExample` kept as the pieces that make it up.

    `pieces` (bytes) joined are the example's bytes; `SerializeToString()` joins them.
    """

    def __init__(self, pieces):
        self.pieces = pieces

    def SerializeToString(self):  # noqa: N802 -- the protobuf method's name, for code that takes either.
        return b"".join(self.pieces)


def sequence_example(context, feature_lists):
    """`EncodedExample` of a SequenceExample: context {key: (kind, values)} (kind "bytes", "float" or
    "int64") and feature_lists {key: list of bytes, one bytes feature per entry}; the frames are not copied."""
    pieces = []
    entries = b"".join(_map_entry(key, _context_feature(context[key])) for key in sorted(context))
    if entries:
        pieces.append(_field(1, entries))
    lists = []  # (key bytes, [pieces of the FeatureList], its length)
    for key in sorted(feature_lists):
        list_pieces = []
        for value in feature_lists[key]:
            inner = _TAG1 + _varint(len(value))  # BytesList.value: tag, length, then the value.
            feature = _TAG1 + _varint(len(inner) + len(value)) + inner  # Feature.bytes_list.
            list_pieces += [_TAG1 + _varint(len(feature) + len(value)) + feature, value]  # FeatureList.feature.
        lists.append((key.encode(), list_pieces, sum(len(p) for p in list_pieces)))
    if lists:
        size = 0
        heads = []
        for key, _, length in lists:
            key_and_value_head = _field(1, key) + _TAG2 + _varint(length)
            heads.append(_TAG1 + _varint(len(key_and_value_head) + length) + key_and_value_head)
            size += len(heads[-1]) + length
        pieces.append(_TAG2 + _varint(size))
        for head, (_, list_pieces, _) in zip(heads, lists):
            pieces.append(head)
            pieces += list_pieces
    return EncodedExample(pieces)


def as_list(value):
    """A label (or label name) as the list stored: a multi-label clip's list as it is, one label as [label]."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def video_example(jpeg_frames, label=None, label_string=None, media_id="", frame_rate=0.0, flow_frames=None):
    """`EncodedExample` of what `make_sequence_example` builds from the same arguments."""
    context = {MEDIA_ID_KEY: ("bytes", [media_id.encode()]), FRAME_RATE_KEY: ("float", [float(frame_rate)])}
    if label is not None:
        context[LABEL_INDEX_KEY] = ("int64", [int(v) for v in as_list(label)])
    if label_string is not None:
        context[LABEL_STRING_KEY] = ("bytes", [v.encode() for v in as_list(label_string)])
    lists = {IMAGE_KEY: list(jpeg_frames)}
    if flow_frames is not None:
        lists[FLOW_KEY] = list(flow_frames)
    return sequence_example(context, lists)
