"""Imports every subsystem's tables, so migrations and `create_all` see the whole schema."""

import engine.access.models
import engine.api.models
import engine.dunning.models
import engine.messaging.models
import engine.payments.models
import engine.sales.models
import engine.store.outbox

try:  # packages still being built may not have tables yet
    import engine.rules.models
except ImportError:
    pass
try:
    import engine.users.models  # noqa: F401
except ImportError:
    pass
