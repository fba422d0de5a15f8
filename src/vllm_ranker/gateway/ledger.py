"""The flow-control books the splicing front keeps for the SDK (in h2's WindowManager's spirit): the front holds,
consumes and writes bytes neither peer knows about, so it owes credits in both directions and must pay them.

Upstream, the SDK's send window is the backend's receive window. Bytes the front holds (a search being judged) or
consumes (a search it answers) are never credited by the backend, so the front credits them itself. The bound is
what keeps every other call on the connection moving: held bytes (``HOLD_TOTAL``) plus unpaid credit
(``DEBT_LIMIT``) stay below the 65,535-byte connection window every HTTP/2 peer starts with (grpc-go's Milvus
never grows it much), so the SDK can always send the backend's calls.

Downstream, the SDK's receive window takes the backend's answers and the front's. The SDK's connection credits for
the front's bytes are kept back from the backend (it never sent them), and a backend frame that would overflow the
SDK's real window waits (the backend counts a window that the front's answers have partly used).

The SDK's SETTINGS reach the backend, whose ACK the front relays; until the SDK has that ACK, it may count by its
old values, and until the backend has read them, the backend does (RFC 9113 §6.5.3: a sender of SETTINGS relies on
them once acknowledged; h2 does). So the front holds its own frames to the stricter of the old and new values (its
answers' stream windows start from the smallest SETTINGS_INITIAL_WINDOW_SIZE in force or in flight, their header
lists within the smallest SETTINGS_MAX_HEADER_LIST_SIZE) and the backend's to the looser (a frame up to the largest
SETTINGS_MAX_FRAME_SIZE).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import h2wire as wire

HOLD_LIMIT = 16384  # request bytes held per search, at most (less when the backend's stream windows are smaller)
HOLD_TOTAL = 32768  # request bytes held per connection
DEBT_LIMIT = 16384  # connection credit owed to the SDK before it is paid in a write of its own
# SDK connection credits passed on to the backend with the next frames, or alone once they add up to this much.
CREDIT_BATCH = 16384


@dataclass
class Ledger:
    held: int = 0  # request bytes held, on every stream
    debt: int = 0  # request bytes the front consumed and has not credited the SDK for
    backend_initial: int = wire.DEFAULT_WINDOW  # the backend's SETTINGS_INITIAL_WINDOW_SIZE
    # The SDK's SETTINGS as the front counts them (see the module's docstring): its answers' initial stream window,
    # the largest frame the backend may send the SDK, the header list the SDK takes (None: no limit announced).
    client_initial: int = wire.DEFAULT_WINDOW
    client_max_frame: int = wire.MAX_FRAME
    client_header_list: int | None = None
    acked: dict[int, int] = field(default_factory=dict)  # the SDK's SETTINGS as of the last ACK it was sent
    unacked: list[dict[int, int]] = field(default_factory=list)  # each SETTINGS of the SDK's not acknowledged, in order
    client_window: int = wire.DEFAULT_WINDOW  # the SDK's connection receive window, as the front counts it
    owed: int = 0  # answer bytes the front wrote that the SDK has not credited yet
    credit_up: int = 0  # SDK connection credits not yet passed on to the backend

    # SDK -> backend

    def holds(self, stream_flow: int, size: int) -> bool:
        """Whether ``size`` more bytes of a held request stay held (else the front takes the request over): under
        the backend's stream window, so the SDK never waits for a stream credit the backend cannot give."""
        return stream_flow + size < min(HOLD_LIMIT, self.backend_initial) and self.held + size <= HOLD_TOTAL

    def due_to_client(self, writing: bool) -> int:
        """The connection credit to give the SDK now: with a write to it that happens anyway, or once it adds up."""
        if self.debt and (writing or self.debt >= DEBT_LIMIT):
            debt, self.debt = self.debt, 0
            return debt
        return 0

    # backend -> SDK

    def client_settings(self, values: dict[int, int]) -> int:
        """The SDK sent SETTINGS (relayed to the backend): how much client_initial moved."""
        self.unacked.append(values)
        return self._recount()

    def client_settings_acked(self) -> int:
        """The SDK was sent the ACK of its oldest SETTINGS not acknowledged: how much client_initial moved."""
        if self.unacked:  # else the backend acknowledged what nobody sent: the SDK's to refuse
            self.acked.update(self.unacked.pop(0))
        return self._recount()

    def _recount(self) -> int:
        def values(key: int, default: int | None) -> list[int]:
            """The value in force (the default until one was acknowledged), then those in flight."""
            in_force = self.acked.get(key, default)
            return [v for v in (in_force, *(u[key] for u in self.unacked if key in u)) if v is not None]

        before = self.client_initial
        self.client_initial = min(values(wire.SETTINGS_INITIAL_WINDOW_SIZE, wire.DEFAULT_WINDOW))
        self.client_max_frame = max(values(wire.SETTINGS_MAX_FRAME_SIZE, wire.MAX_FRAME))
        self.client_header_list = min(values(wire.SETTINGS_MAX_HEADER_LIST_SIZE, None), default=None)
        return self.client_initial - before

    def client_credit(self, increment: int) -> None:
        """The SDK's WINDOW_UPDATE on the connection: its credits for the front's bytes are kept back."""
        self.client_window += increment
        if self.client_window > wire.MAX_WINDOW:
            raise wire.ProtocolError(wire.FLOW_CONTROL_ERROR, "the SDK's connection window passed 2^31-1")
        kept = min(increment, self.owed)
        self.owed -= kept
        self.credit_up += increment - kept

    def due_to_backend(self, writing: bool) -> int:
        if self.credit_up and (writing or self.credit_up >= CREDIT_BATCH):
            credit, self.credit_up = self.credit_up, 0
            return credit
        return 0

    def wrote(self, size: int, own: bool) -> None:
        """DATA written to the SDK: the backend's (``own`` False) or the front's."""
        self.client_window -= size
        if own:
            self.owed += size
