from quarry_core.interfaces import PolicyConfig
from quarry_core.testing.contracts import PolicyContract
from quarry_policy_buffered import BufferedPolicy, StreamingPolicy


class TestBufferedAtLeastOnceContract(PolicyContract):
    config = PolicyConfig(name="buffered", buffer_events=100)
    factory = BufferedPolicy


class TestBufferedChunksFirstContract(PolicyContract):
    config = PolicyConfig(name="buffered", buffer_events=10, buffer_bytes=1 << 20, flush_mode="chunks_first")
    factory = BufferedPolicy


class TestBufferedTwoPhaseContract(PolicyContract):
    config = PolicyConfig(name="buffered", buffer_bytes=4096, flush_mode="two_phase")
    factory = BufferedPolicy


class TestStreamingCountContract(PolicyContract):
    config = PolicyConfig(name="streaming", flush_count=7)
    factory = StreamingPolicy


class TestStreamingIntervalContract(PolicyContract):
    config = PolicyConfig(name="streaming", flush_interval=0.01)
    factory = StreamingPolicy
