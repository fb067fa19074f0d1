"""Push notifications, the in-app inbox and the user's notification preferences."""
