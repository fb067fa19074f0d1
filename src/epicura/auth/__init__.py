"""Accounts, login sessions, tokens and the roles that guard every route."""
