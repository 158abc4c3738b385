"""The Winkit app: a Flet (Flutter) UI for shoppers and store staff."""
