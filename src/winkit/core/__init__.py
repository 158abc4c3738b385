"""What every Winkit service shares: settings, database, auth, errors, events, observability."""
