"""The Streamlit dashboard: orders, sagas, stock and money from the FlowForge database."""
