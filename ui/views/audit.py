from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from engine.store import Database
from engine.users import ROLES, list_audit, list_users


def render(db: Database, user: dict[str, Any]) -> None:
    st.header("Audit & users")
    with db.session() as s:
        entries = list_audit(s)
        users = list_users(s)
    st.subheader("Publishes and rollbacks")
    if entries:
        st.dataframe(
            pd.DataFrame(
                [
                    {k: e[k] for k in ("at", "user", "role", "action", "kind", "target", "version", "why")}
                    for e in entries
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    else:
        st.write("Nothing published from the console yet.")
    st.subheader("Users")
    st.dataframe(pd.DataFrame(users), hide_index=True)
    st.caption(f"Roles: {', '.join(ROLES)}. Add users with `billing user add NAME --role ROLE`.")
