"""The pricing manager's console: sign in, edit drafts, simulate, publish, inspect.

    streamlit run ui/app.py --server.headless true      (or `billing up`)

Pages live in ui/views/ (not ui/pages/, which Streamlit would turn into its own navigation).
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from views import (  # noqa: E402
    access,
    audit,
    bank,
    books,
    common,
    customers,
    editor,
    inspect,
    overview,
    plan_builder,
    promotions,
    publish,
    signin,
    simulate,
    webhooks,
)

st.set_page_config(page_title="Billing console", page_icon="💳", layout="wide")

PAGES = {
    "Editor": editor.render,
    "Simulate": simulate.render,
    "Publish & history": publish.render,
    "Inspect": inspect.render,
    "Access tester": access.render,
    "Audit & users": audit.render,
    "Webhooks": webhooks.render,
    "Books": books.render,
    "Bank lines": bank.render,
    "Overview": overview.render,
    "Customers": customers.render,
    "Plan builder": plan_builder.render,
    "Promotions": promotions.render,
}

# Widget values are dropped when their page is not drawn; writing them back keeps the
# editor's text (and kind) while the user visits other pages.
for _key in ("editor_text", "editor_kind"):
    if _key in st.session_state:
        st.session_state[_key] = st.session_state[_key]

db = common.guarded_database()
if db is not None:
    user = st.session_state.get("user")
    if user is None:
        common.guarded(signin.render, db)
    else:
        with st.sidebar:
            st.markdown(f"**{user['name']}** · {user['role']}")
            page = st.radio("Page", list(PAGES), key="page")
            if st.button("Sign out", key="sign_out"):
                st.session_state.clear()
                st.rerun()
        common.guarded(PAGES[page], db, user)
