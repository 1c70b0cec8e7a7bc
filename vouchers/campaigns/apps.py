from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "vouchers.campaigns"
    label = "campaigns"
