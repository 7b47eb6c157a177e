"""Tiny real videos made with PyAV at test time (a few generated frames, a tone), and the
broken files the upload must refuse."""
import math
import struct

import av
from PIL import Image, ImageDraw

# (container, video encoder, audio encoder) by what the files are called in the tests. This
# PyAV build has libx264 (H.264), libvpx (VP8, VP9), AAC, libopus, ffmpeg's own Vorbis, MPEG-4
# Part 2 and MJPEG encoders; test_media.py checks that it still does.
KINDS = {
    "h264-aac.mp4": ("mp4", "libx264", "aac"),
    "h264.mp4": ("mp4", "libx264", None),
    "vp9-opus.webm": ("webm", "libvpx-vp9", "libopus"),
    "vp8.webm": ("webm", "libvpx", None),
    "vp8-vorbis.webm": ("webm", "libvpx", "vorbis"),
    "mpeg4-aac.mp4": ("mp4", "mpeg4", "aac"),
    "mjpeg.mp4": ("mp4", "mjpeg", None),
    "aac-only.mp4": ("mp4", None, "aac"),
    "opus-only.webm": ("webm", None, "libopus"),
    "vp9-opus.mkv": ("matroska", "libvpx-vp9", "libopus"),
}
ENCODERS = sorted({codec for _, v, a in KINDS.values() for codec in (v, a) if codec})


def make_video(path, kind="h264-aac.mp4", seconds=2.0, size=(64, 48), fps=15, options=None):
    """Write a real video of ``kind`` (a KINDS key) to ``path``: moving colours, a tone."""
    fmt, vcodec, acodec = KINDS[kind]
    width, height = size
    frames = max(1, round(seconds * fps))
    with av.open(str(path), "w", format=fmt, options=options or {}) as out:
        video = audio = None
        if vcodec:
            video = out.add_stream(vcodec, rate=fps)
            video.width, video.height = width, height
            video.pix_fmt = "yuvj420p" if vcodec == "mjpeg" else "yuv420p"
        if acodec:
            audio = out.add_stream(acodec, rate=48000)
            if audio.codec_context.name == "vorbis":
                audio.codec_context.options = {"strict": "experimental"}
        if video is not None:
            for i in range(frames):
                image = Image.new("RGB", (width, height), ((i * 16) % 256, 90, 40))
                ImageDraw.Draw(image).rectangle([0, 0, width // 2, height // 2], fill=(20, 200, 20))
                frame = av.VideoFrame.from_image(image)
                frame.pts = i
                for packet in video.encode(frame):
                    out.mux(packet)
            for packet in video.encode():
                out.mux(packet)
        if audio is not None:
            _tone(out, audio, seconds)
    return path


def _tone(out, audio, seconds, rate=48000):
    ctx = audio.codec_context
    size = ctx.frame_size or 1024
    fmt = ctx.format.name
    planar_float = fmt.startswith("flt")
    pts = 0
    while pts < seconds * rate:
        frame = av.AudioFrame(format=fmt, layout=ctx.layout.name, samples=size)
        frame.sample_rate, frame.pts = rate, pts
        channels = len(ctx.layout.channels)
        values = [0.1 * math.sin(2 * math.pi * 440 * (pts + k) / rate) for k in range(size)]
        if planar_float:
            sample = struct.pack(f"<{size}f", *values)
        else:
            sample = struct.pack(f"<{size}h", *(int(v * 32767) for v in values))
        if fmt.endswith("p"):
            for plane in frame.planes[:channels]:
                plane.update(sample)
        else:  # interleaved: the same sample on every channel
            step = 4 if planar_float else 2
            frame.planes[0].update(b"".join(sample[k:k + step] * channels for k in range(0, len(sample), step)))
        pts += size
        for packet in audio.encode(frame):
            out.mux(packet)
    for packet in audio.encode():
        out.mux(packet)


def truncated(source, path, fraction=0.6):
    """The first ``fraction`` of ``source``'s bytes: an upload cut short."""
    data = source.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    return path


def hls_playlist(url):
    """An HLS playlist whose segment is ``url`` (ffmpeg would fetch it, given the chance)."""
    return (f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
            f"#EXTINF:2.0,\n{url}\n#EXT-X-ENDLIST\n").encode()


def dash_manifest(url):
    return (f'<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static">'
            f'<Period><AdaptationSet><Representation id="1" bandwidth="1000">'
            f'<BaseURL>{url}</BaseURL></Representation></AdaptationSet></Period></MPD>\n').encode()
