"""``zoo serve``: the local web page and HTTP API (zoo.serve); docs/serve.md."""

from __future__ import annotations

import click

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; anything but loopback makes the server reachable from other machines (no authentication).")
@click.option("--port", type=int, default=7860, show_default=True, help="Port (0: any free one; the URL printed says which).")
@click.option("--checkpoint", "checkpoints", multiple=True, metavar="CKPT", help="A zoo checkpoint to offer (repeatable); the registry cache's are offered too.")
@click.option("--methods", default=None, metavar="M1,M2", help="Methods to offer (default: every classical method and every method with a checkpoint).")
@click.option("--device", default=None, metavar="D[,D...]", help="Device(s), one worker each: auto, cpu, cuda[:N] or mps (default: $ZOO_DEVICE or auto).")
@click.option("--max-upload-mb", type=float, default=20.0, show_default=True, help="Largest image or mask file accepted.")
@click.option("--max-pixels", default="4096x4096", show_default=True, metavar="WxH", help="Largest image accepted (checked on the file's header, before decoding).")
@click.option("--max-queue", type=int, default=8, show_default=True, help="Jobs that may wait; one more is refused with HTTP 429.")
@click.option("--max-models", type=int, default=4, show_default=True, help="Models kept loaded (least recently used dropped first).")
@click.option("--no-cache", "no_cache", is_flag=True, help="Do not offer the registry cache's checkpoints ($ZOO_CACHE_DIR/checkpoints).")
def serve_cmd(host, port, checkpoints, methods, device, max_upload_mb, max_pixels, max_queue, max_models, no_cache) -> None:
    """Inpaint one image with several methods side by side in the browser (and over HTTP)."""
    from zoo.errors import ZooError

    if max_upload_mb <= 0 or max_queue < 0 or max_models < 1:
        raise ZooError("--max-upload-mb must be > 0, --max-queue >= 0 and --max-models >= 1")
    if not 0 <= port <= 65535:
        raise ZooError(f"--port {port}: give 0 ... 65535")
    from zoo.serve import Limits, ServeSettings, create_app, parse_pixels

    try:
        width, height = parse_pixels(max_pixels)
    except ValueError as exc:
        raise ZooError(str(exc)) from None
    devices = [d.strip() for d in (device or "").split(",") if d.strip()] or [None]
    from zoo.device import get_device

    devices = list(dict.fromkeys(str(get_device(d)) for d in devices))  # an unknown device: one line now; one worker per device
    sock = _bind(host, port)
    try:
        settings = ServeSettings(checkpoints=list(checkpoints), methods=[m.strip() for m in methods.split(",") if m.strip()] if methods else None,
                                 devices=devices, limits=Limits(int(max_upload_mb * 2**20), width, height), max_queue=max_queue,
                                 max_models=max_models, use_cache=not no_cache)
        app = create_app(settings)
    except BaseException:
        sock.close()
        raise
    if not _is_loopback(host):
        click.echo(f"Warning: --host {host} makes this server reachable from other machines; it has no authentication", err=True)
    shown = f"[{host}]" if ":" in host else host
    bound_port = sock.getsockname()[1]
    offer = app.state.server.offer
    click.echo(f"zoo serve: http://{shown}:{bound_port}/  ({len(offer.methods)} methods: {', '.join(offer.methods)}; "
               f"{len(offer.checkpoints)} checkpoint(s); device {', '.join(devices)}; Ctrl-C stops)")
    click.echo(f"temporary files: {app.state.server.folder} (removed on exit)")
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])  # Ctrl-C / SIGTERM: running jobs are cancelled, the temporary folder removed
    except KeyboardInterrupt:
        pass
    finally:
        app.state.server.remove_folder()
        sock.close()
    click.echo("zoo serve: stopped; temporary files removed")


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int):
    """A listening socket on (host, port); a port in use is one line."""
    import socket

    from zoo.errors import ZooError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ZooError(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        import errno

        if exc.errno == errno.EADDRINUSE:
            raise ZooError(f"port {port} on {host} is in use; stop what holds it or pick another with --port (0: any free port)") from None
        raise ZooError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.set_inheritable(True)
    return sock


COMMANDS = [serve_cmd]
