"""Probe one uploaded video with PyAV and print what it holds as JSON; optionally write a poster.

Run in a subprocess with a time limit by ``experts/media.py`` (never in a web worker: a decoder
that crashes or hangs on a hostile file takes only this process with it)::

    python -m callme.experts.probe FILE --kind mp4|webm [--poster OUT.jpg] [--poster-at 0.1 --poster-max 3]

It states facts and decides nothing: the rules (formats, codecs, limits) are media.py's. It
imports nothing of callme, so that it starts fast when run by path. The demuxer is the one the
file's first bytes named (``--kind``), never ffmpeg's guess, and only local files may be opened,
so a playlist (HLS, DASH) or a reference inside the file can never make ffmpeg open a URL or
another file.

Output: ``{"ok": true, "format": ..., "streams": [...], "duration": s | null, "video": {...}}``
or ``{"ok": false, "error": "..."}``; the exit status is 0 either way (a crash is not).
"""
import argparse
import json
import resource
import sys

# The demuxer each kind of file is opened with, and its options: local files only; no
# external references (QuickTime "dref" atoms) and no absolute paths.
DEMUXERS = {
    "mp4": ("mp4", {"enable_drefs": "0", "use_absolute_path": "0"}),
    "webm": ("webm", {}),
}
COMMON_OPTIONS = {"protocol_whitelist": "file"}
MEMORY_LIMIT = 1536 * 1024 * 1024  # bytes of address space: a decoder that balloons dies alone
POSTER_QUALITY = 85
DECODER_THREADS = 2  # not one per core: memory stays bounded (and within MEMORY_LIMIT) on any host


def _limit_resources(cpu_seconds):
    """Cap this process's CPU time and memory (the parent's wall-clock limit kills it sooner)."""
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _seconds(value, time_base):
    return None if value is None or time_base is None else float(value * time_base)


def _stream(stream):
    ctx = stream.codec_context
    info = {"index": stream.index, "type": stream.type, "codec": ctx.name if ctx else None,
            "attached_pic": bool(stream.disposition & 0x400) if hasattr(stream, "disposition") else False,
            "duration": _seconds(stream.duration, stream.time_base)}
    if stream.type == "video":
        info.update(width=ctx.width, height=ctx.height)
    elif stream.type == "audio":
        info.update(sample_rate=ctx.sample_rate, channels=ctx.channels if hasattr(ctx, "channels") else None)
    return info


def _demux_all(container, streams):
    """Read every packet (no decoding): per stream the packets, bytes and the end of the last one."""
    seen = {s.index: {"packets": 0, "bytes": 0, "end": None, "corrupt": 0} for s in streams}
    for packet in container.demux(*streams):
        if packet.size == 0 and packet.pts is None:
            continue  # the demuxer's flush packet
        info = seen[packet.stream.index]
        info["packets"] += 1
        info["bytes"] += packet.size
        if packet.is_corrupt:
            info["corrupt"] += 1
        start = packet.pts if packet.pts is not None else packet.dts
        if start is not None:
            end = _seconds(start + (packet.duration or 0), packet.time_base)
            info["end"] = end if info["end"] is None else max(info["end"], end)
    return seen


def _first_frames(container, video, audio, poster_at):
    """Decode from the start: the first video frame (and audio frame), and the video frame at
    ``poster_at`` seconds (or the last one before the video ends). Returns (frames, poster)."""
    decoded = {"video": 0, "audio": 0}
    poster = None
    wanted = [s for s in (video, audio) if s is not None]
    for packet in container.demux(*wanted):
        if packet.stream is audio:
            if decoded["audio"]:
                continue
            decoded["audio"] += len(packet.decode())
            continue
        for frame in packet.decode():
            decoded["video"] += 1
            poster = frame
            if frame.time is None or frame.time >= poster_at:
                return decoded, poster
    return decoded, poster


def probe(path, kind, poster_path=None, poster_at=0.1, poster_max=3.0):
    """The facts of one file; the poster is the frame ``poster_at`` of the way in (at most
    ``poster_max`` seconds in), or the first one."""
    import av

    av.logging.set_level(av.logging.PANIC)  # the JSON says what went wrong, not ffmpeg's log
    fmt, options = DEMUXERS[kind]
    try:
        container = av.open(path, format=fmt, options={**COMMON_OPTIONS, **options})
    except (av.FFmpegError, ValueError, OSError) as e:
        return {"ok": False, "error": f"open: {e}"}
    with container:
        streams = [_stream(s) for s in container.streams]
        result = {"ok": True, "format": container.format.name, "streams": streams,
                  "duration": container.duration / 1_000_000 if container.duration else None}
        try:
            ended = _demux_all(container, list(container.streams))
        except (av.FFmpegError, ValueError, OSError) as e:
            return {**result, "ok": False, "error": f"demux: {e}"}
        for info in streams:
            info.update(ended[info["index"]])

        videos = [s for s in container.streams.video if not (s.disposition & 0x400)]
        if not videos:
            return result
        video = videos[0]
        video.codec_context.thread_count = DECODER_THREADS
        audio = container.streams.audio[0] if container.streams.audio else None
        ends = [info["end"] for info in streams if info["end"] is not None]
        length = max(ends + [result["duration"] or 0])
        try:
            container.seek(0)
            frames, poster = _first_frames(container, video, audio, min(poster_max, poster_at * length))
        except (av.FFmpegError, ValueError, OSError) as e:
            return {**result, "ok": False, "error": f"decode: {e}"}
        result["video"] = {"index": video.index, "frames": frames["video"], "audio_frames": frames["audio"],
                           "poster_time": poster.time if poster is not None else None}
        if poster is not None and poster_path:
            image = poster.to_image()  # RGB, at the video's own size
            image.save(poster_path, "JPEG", quality=POSTER_QUALITY, optimize=True)
            result["video"]["poster"] = {"width": image.width, "height": image.height}
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--kind", choices=sorted(DEMUXERS), required=True)
    parser.add_argument("--poster", help="write the poster frame here (JPEG)")
    parser.add_argument("--poster-at", type=float, default=0.1, help="the fraction of the video where the poster is")
    parser.add_argument("--poster-max", type=float, default=3.0, help="at most this many seconds in")
    parser.add_argument("--cpu-seconds", type=int, default=30)
    args = parser.parse_args(argv)
    _limit_resources(args.cpu_seconds)
    try:
        result = probe(args.file, args.kind, args.poster, args.poster_at, args.poster_max)
    except MemoryError:
        result = {"ok": False, "error": "out of memory"}
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
