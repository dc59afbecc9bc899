"""A real RTSP server on 127.0.0.1 for the tests: GStreamer's gst-rtsp-server through PyGObject.

usage: rtsp-server.py PORT PATH [USERNAME PASSWORD]
Serves a live test pattern as RTP/JPEG (jpegenc ! rtpjpegpay: plugins-good only, no x264).
With USERNAME, clients must authenticate (Basic). Prints "ready" once listening; exits on SIGTERM.
Debian packages: python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
"""
import signal
import sys

import gi

gi.require_version('Gst', '1.0')
gi.require_version('GstRtspServer', '1.0')
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
port, path = sys.argv[1], sys.argv[2]
user = sys.argv[3] if len(sys.argv) > 3 else ''
password = sys.argv[4] if len(sys.argv) > 4 else ''

server = GstRtspServer.RTSPServer()
server.set_address('127.0.0.1')
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
# rtpjpegpay needs 4:2:0 JPEG ("Invalid component" otherwise): I420 before jpegenc.
factory.set_launch(
    '( videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=10/1 '
    '! jpegenc quality=80 ! rtpjpegpay name=pay0 pt=26 )'
)
factory.set_shared(True)
if user:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string('media.factory.role', 'viewer')
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    role = Gst.Structure.from_string('viewer, media.factory.access=(boolean)true, media.factory.construct=(boolean)true')[0]
    factory.add_role_from_structure(role)
server.get_mount_points().add_factory(path, factory)

if server.attach(None) == 0:
    print(f'cannot listen on 127.0.0.1:{port}', flush=True)
    sys.exit(1)
loop = GLib.MainLoop()
GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
print('ready', flush=True)
loop.run()
