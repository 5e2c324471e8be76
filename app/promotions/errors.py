from app.errors import NotFound


class PromotionNotFound(NotFound):
    title = "No such promotion"
