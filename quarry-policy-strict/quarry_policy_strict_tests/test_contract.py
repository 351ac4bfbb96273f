from quarry_core.interfaces import PolicyConfig
from quarry_core.testing.contracts import PolicyContract
from quarry_policy_strict import StrictPolicy


class TestStrictContract(PolicyContract):
    config = PolicyConfig(name="strict")
    factory = StrictPolicy
