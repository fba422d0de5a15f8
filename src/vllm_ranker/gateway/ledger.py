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
"""

from __future__ import annotations

from dataclasses import dataclass

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
    client_initial: int = wire.DEFAULT_WINDOW  # the SDK's SETTINGS_INITIAL_WINDOW_SIZE
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
