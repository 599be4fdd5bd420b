#!/usr/bin/env python3
"""An HTTP/2 client that misbehaves on purpose, for the proxy's abuse-guard tests.

Usage: h2_misbehaving_client.py PORT CA_FILE TOKEN_FILE MODE [COUNT]
Modes:
  rapid-reset N   HEADERS then RST_STREAM, N times (CVE-2023-44487)
  streams N       N concurrent GETs of a watch, none closed
  continuation N  one HEADERS without END_HEADERS, then N empty CONTINUATION frames
  ping-flood N    N PING frames as fast as possible
  big-headers N   one GET with a header of N bytes
Prints one JSON object: what the server did (GOAWAY and its error code, streams
reset or answered, whether the connection closed), and how many frames went out.
Bounded: every mode stops after COUNT frames or 20 s, and never reconnects.
"""
import json
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings


def main():
    port, ca, token_file, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    count = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
    token = open(token_file).read().strip()
    context = ssl.create_default_context(cafile=ca)
    context.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
    assert sock.selected_alpn_protocol() == "h2", sock.selected_alpn_protocol()
    config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8", validate_outbound_headers=False,
                                       normalize_outbound_headers=False, validate_inbound_headers=False)
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1000})
    sock.sendall(conn.data_to_send())
    result = {"mode": mode, "sent": 0, "goaway": False, "goawayError": None, "lastStreamId": None,
              "resets": 0, "refused": 0, "responses": 0, "closed": False}

    def headers(path, extra=()):
        return [(":method", "GET"), (":scheme", "https"), (":authority", "127.0.0.1"), (":path", path),
                ("authorization", "Bearer " + token), ("user-agent", "h2-misbehaving-client")] + list(extra)

    def pump(timeout=0.0):
        sock.settimeout(timeout)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    result["closed"] = True
                    return
                try:
                    events = conn.receive_data(data)
                except h2.exceptions.ProtocolError:
                    events = []
                for event in events:
                    if isinstance(event, h2.events.ConnectionTerminated):
                        result["goaway"] = True
                        result["goawayError"] = int(event.error_code) if event.error_code is not None else None
                        result["lastStreamId"] = event.last_stream_id
                    elif isinstance(event, h2.events.StreamReset):
                        result["resets"] += 1
                        if int(event.error_code) == 7:  # REFUSED_STREAM
                            result["refused"] += 1
                    elif isinstance(event, h2.events.ResponseReceived):
                        result["responses"] += 1
                out = conn.data_to_send()
                if out:
                    sock.sendall(out)
                sock.settimeout(timeout if timeout > 0 else 0.0001)
        except (socket.timeout, BlockingIOError, ssl.SSLWantReadError):
            return
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            result["closed"] = True

    def send(data):
        try:
            sock.sendall(data)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            result["closed"] = True

    deadline = time.time() + 20
    try:
        if mode == "rapid-reset":
            for _ in range(count):
                if result["closed"] or result["goaway"] or time.time() > deadline:
                    break
                stream = conn.get_next_available_stream_id()
                conn.send_headers(stream, headers("/api/v1/namespaces/demo/services"), end_stream=True)
                conn.reset_stream(stream, error_code=8)  # CANCEL
                send(conn.data_to_send())
                result["sent"] += 1
                if result["sent"] % 50 == 0:
                    pump()
        elif mode == "streams":
            for _ in range(count):
                stream = conn.get_next_available_stream_id()
                conn.send_headers(stream, headers("/api/v1/namespaces/demo/services?watch=1"), end_stream=True)
                result["sent"] += 1
            send(conn.data_to_send())
        elif mode == "continuation":
            # A HEADERS frame without END_HEADERS (flags 0x1 END_STREAM only), then empty CONTINUATION frames.
            block = conn.encoder.encode(headers("/api/v1/namespaces/demo/services"))
            frame = len(block).to_bytes(3, "big") + bytes([0x01, 0x01]) + (1).to_bytes(4, "big") + block
            send(frame)
            for _ in range(count):
                if result["closed"] or result["goaway"] or time.time() > deadline:
                    break
                send((0).to_bytes(3, "big") + bytes([0x09, 0x00]) + (1).to_bytes(4, "big"))
                result["sent"] += 1
                if result["sent"] % 100 == 0:
                    pump()
        elif mode == "ping-flood":
            for i in range(count):
                if result["closed"] or result["goaway"] or time.time() > deadline:
                    break
                conn.ping(i.to_bytes(8, "big"))
                send(conn.data_to_send())
                result["sent"] += 1
                if result["sent"] % 200 == 0:
                    pump()
        elif mode == "big-headers":
            stream = conn.get_next_available_stream_id()
            conn.send_headers(stream, headers("/api/v1/namespaces/demo/services", [("x-padding", "a" * count)]), end_stream=True)
            send(conn.data_to_send())
            result["sent"] = 1
        else:
            raise SystemExit("unknown mode " + mode)
    finally:
        end = time.time() + 3
        while time.time() < end and not result["closed"]:
            pump(0.2)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
