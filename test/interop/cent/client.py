"""Drives Centrifugo's Python server SDK (`cent`, sync Client) against a server API URL.

Knows nothing of the server behind the URL: it takes the API URL, the key and
the channel names on the command line, calls every method, and prints one JSON
object on stdout with what each call returned or raised; the calling test
decides whether that is right. Exit code 0 when every call ran (a call that
raised is a recorded outcome, not a failure of the script), 1 on a bug here.

    client.py calls --url http://127.0.0.1:8000/api --key KEY \\
        --history-channel chat:h --presence-channel chat:p --plain-channel news \\
        --unknown-channel nope:x --user alice --client c1
    client.py wrong-key --url ... --key WRONG --history-channel chat:h
"""

import argparse
import importlib.metadata
import json
import sys

from cent import (
    BroadcastRequest,
    ChannelsRequest,
    Client,
    Disconnect,
    DisconnectRequest,
    HistoryRemoveRequest,
    HistoryRequest,
    InfoRequest,
    PresenceRequest,
    PresenceStatsRequest,
    PublishRequest,
    StreamPosition,
    UnsubscribeRequest,
)
from cent.exceptions import (
    CentApiResponseError,
    CentTransportError,
    CentUnauthorizedError,
)

TIMEOUT = 5.0


def outcome(name, call):
    """Runs one SDK call; returns what it gave or what it raised, as JSON."""
    try:
        result = call()
    except CentApiResponseError as error:
        return {"name": name, "error": {"code": error.code, "message": error.message}}
    except CentUnauthorizedError:
        return {"name": name, "raised": "CentUnauthorizedError"}
    except CentTransportError as error:
        return {"name": name, "raised": "CentTransportError", "status": error.status_code}
    return {"name": name, "result": result.model_dump(mode="json")}


def calls(client, args):
    """Every method, in an order whose results depend on the ones before."""
    history = args.history_channel
    steps = []
    steps.append(
        outcome(
            "publish",
            lambda: client.publish(PublishRequest(channel=history, data={"text": "hello"}, tags={"kind": "greeting"})),
        )
    )
    epoch = steps[0].get("result", {}).get("epoch", "")
    steps += [
        outcome(
            "publish_skip_history",
            lambda: client.publish(PublishRequest(channel=history, data={"text": "not kept"}, skip_history=True)),
        ),
        outcome(
            "broadcast",
            lambda: client.broadcast(
                BroadcastRequest(
                    channels=[history, args.unknown_channel, args.plain_channel],
                    data={"text": "to all"},
                )
            ),
        ),
        outcome("history", lambda: client.history(HistoryRequest(channel=history, limit=10))),
        outcome(
            "history_since_reverse",
            lambda: client.history(
                HistoryRequest(channel=history, limit=10, since=StreamPosition(offset=1, epoch=epoch), reverse=True)
            ),
        ),
        outcome("history_position", lambda: client.history(HistoryRequest(channel=history))),
        outcome("history_remove", lambda: client.history_remove(HistoryRemoveRequest(channel=history))),
        outcome("history_after_remove", lambda: client.history(HistoryRequest(channel=history, limit=10))),
        outcome("presence", lambda: client.presence(PresenceRequest(channel=args.presence_channel))),
        outcome("presence_stats", lambda: client.presence_stats(PresenceStatsRequest(channel=args.presence_channel))),
        outcome("channels", lambda: client.channels(ChannelsRequest())),
        outcome("channels_pattern", lambda: client.channels(ChannelsRequest(pattern=args.presence_channel[:-1] + "*"))),
        outcome("info", lambda: client.info(InfoRequest())),
        outcome(
            "unsubscribe",
            lambda: client.unsubscribe(UnsubscribeRequest(user=args.user, channel=args.presence_channel)),
        ),
        outcome("presence_after_unsubscribe", lambda: client.presence(PresenceRequest(channel=args.presence_channel))),
        outcome(
            "disconnect",
            lambda: client.disconnect(
                DisconnectRequest(
                    user=args.user, client=args.client, disconnect=Disconnect(code=4100, reason="bye from cent")
                )
            ),
        ),
        outcome("disconnect_default", lambda: client.disconnect(DisconnectRequest(user=args.user))),
        # Refusals the SDK must surface as CentApiResponseError with the server's code.
        outcome("publish_unknown", lambda: client.publish(PublishRequest(channel=args.unknown_channel, data=1))),
        outcome("presence_unavailable", lambda: client.presence(PresenceRequest(channel=args.plain_channel))),
        outcome(
            "publish_b64data",
            lambda: client.publish(PublishRequest(channel=history, data=None, b64data="AAEC/w==")),
        ),
    ]
    return steps


def wrong_key(client, args):
    return [outcome("publish", lambda: client.publish(PublishRequest(channel=args.history_channel, data=1)))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["calls", "wrong-key"])
    parser.add_argument("--url", required=True, help="the API URL, e.g. http://127.0.0.1:8000/api")
    parser.add_argument("--key", required=True)
    parser.add_argument("--history-channel", required=True, help="a channel with history")
    parser.add_argument("--presence-channel", default="", help="a channel with presence and subscribers")
    parser.add_argument("--plain-channel", default="", help="a channel without history or presence")
    parser.add_argument("--unknown-channel", default="", help="a channel the server does not know")
    parser.add_argument("--user", default="")
    parser.add_argument("--client", default="", help="one connection of --user")
    args = parser.parse_args()

    client = Client(args.url, args.key, timeout=TIMEOUT)
    run = calls if args.scenario == "calls" else wrong_key
    steps = run(client, args)
    json.dump({"cent_version": importlib.metadata.version("cent"), "steps": steps}, sys.stdout)


if __name__ == "__main__":
    main()
