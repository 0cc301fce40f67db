"""A pydicom decoding plugin: 12-bit JPEG Extended (1.2.840.10008.1.2.4.51) through GDCM.

Why it exists: pylibjpeg's libjpeg refuses 12-bit codestreams whose scan header is not
strictly conformant (Se != 63 in the SOS segment, as in the NEMA WG04 ``NM1_JPLY`` that
pydicom ships as ``JPEG-lossy.dcm``), pillow has no 12-bit JPEG, and pydicom 3's own
``gdcm`` plugin turns every 12-bit JPEG Extended frame away before calling GDCM. GDCM
(``python-gdcm``) decodes these files; this module lets pydicom ask it.

:func:`use_gdcm_as_fallback` registers the plugin and moves pydicom's own ``gdcm`` plugin
behind pylibjpeg and pillow, so GDCM only sees frames the other decoders refused and
every file that decoded before decodes to the same pixels. It is idempotent and
thread-safe, and runs on first use, not at import. GDCM's bundled IJG library writes
"Unsupported JPEG data precision 12" to stderr before it retries with its 12-bit
decoder; the pixels are right (python-gdcm issue #35).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from pydicom.uid import JPEGExtended12Bit

if TYPE_CHECKING:
    from pydicom.pixels.decoders.base import DecodeRunner

__all__ = ["LABEL", "use_gdcm_as_fallback", "decode_frame", "is_available"]

LABEL = "gdcm-jpeg12"  # the plugin's name in pydicom's decoder

# pydicom's plugin protocol: the syntaxes this plugin decodes, and what it needs.
DECODER_DEPENDENCIES = {JPEGExtended12Bit: ("python-gdcm>=3.0.10",)}

_lock = threading.Lock()
_done = False


def is_available(uid: str) -> bool:
    """pydicom's plugin protocol: True if GDCM is installed and ``uid`` is ours."""
    try:
        import gdcm  # noqa: F401
    except ImportError:
        return False
    return uid in DECODER_DEPENDENCIES


def decode_frame(src: bytes, runner: DecodeRunner) -> bytes:
    """Decode one encapsulated frame; pydicom reshapes and types the bytes returned."""
    import gdcm

    fragment = gdcm.Fragment()
    fragment.SetByteStringValue(src)
    fragments = gdcm.SequenceOfFragments.New()
    fragments.AddFragment(fragment)
    element = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
    element.SetValue(fragments.__ref__())

    image = gdcm.Image()
    image.SetNumberOfDimensions(2)
    image.SetDimensions((runner.columns, runner.rows, 1))
    image.SetDataElement(element)
    pi_type = gdcm.PhotometricInterpretation.GetPIType(str(runner.photometric_interpretation))
    image.SetPhotometricInterpretation(gdcm.PhotometricInterpretation(pi_type))
    if runner.samples_per_pixel > 1:
        image.SetPlanarConfiguration(runner.planar_configuration)
    image.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGExtendedProcess2_4))
    bits_stored = runner.bits_stored
    image.SetPixelFormat(gdcm.PixelFormat(
        runner.samples_per_pixel, runner.bits_allocated, bits_stored, bits_stored - 1,
        runner.pixel_representation,
    ))
    buffer = image.GetBuffer()  # None when GDCM cannot decode the codestream
    if buffer is None:
        raise ValueError("GDCM could not decode the JPEG codestream")
    # GDCM returns char* as str: its bytes come back through surrogateescape.
    frame = buffer.encode("utf-8", "surrogateescape")
    expected = runner.rows * runner.columns * runner.samples_per_pixel * (runner.bits_allocated // 8)
    if len(frame) != expected:
        raise ValueError(f"GDCM returned {len(frame)} bytes for a {expected}-byte frame")
    return frame


def use_gdcm_as_fallback() -> None:
    """Make GDCM pydicom's last resort: after pylibjpeg and pillow, and for 12-bit JPEG."""
    global _done
    from pydicom.pixels import get_decoder
    from pydicom.pixels.decoders import gdcm as pydicom_gdcm

    with _lock:
        if _done:
            return
        for tsyntax in pydicom_gdcm.DECODER_DEPENDENCIES:
            decoder = get_decoder(tsyntax)
            if "gdcm" in decoder.available_plugins:  # re-adding puts it last in the try order
                decoder.remove_plugin("gdcm")
                decoder.add_plugin("gdcm", ("pydicom.pixels.decoders.gdcm", "_decode_frame"))
        get_decoder(JPEGExtended12Bit).add_plugin(LABEL, (__name__, "decode_frame"))
        _done = True
