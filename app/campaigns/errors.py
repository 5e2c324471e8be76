from app.errors import NotFound


class CampaignNotFound(NotFound):
    title = "No such campaign"
