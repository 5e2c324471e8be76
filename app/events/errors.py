from app.errors import NotFound


class EventNotFound(NotFound):
    title = "No such event"


class ItemNotFound(NotFound):
    title = "No such item"
