"""Campaigns and their components: what each affected customer is owed."""

from django.db import models
from django.db.models import Q


class Campaign(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    eligibility_opens_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=120)

    def __str__(self) -> str:
        return self.slug

    @property
    def amount_krw(self) -> int:
        return sum(c.amount_krw for c in self.components.all())


class Component(models.Model):
    """One voucher per customer: a category (``all`` fits any order), an amount, an expiry."""

    ALL = "all"

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="components")
    category = models.SlugField(max_length=32)
    amount_krw = models.BigIntegerField()
    expires_at = models.DateTimeField(null=True, blank=True)
    valid_days = models.PositiveIntegerField(null=True, blank=True)
    # Usable from then on (NULL: from issue), e.g. travel vouchers for the next season.
    valid_from = models.DateTimeField(null=True, blank=True)
    min_order_krw = models.BigIntegerField(default=0)
    single_use = models.BooleanField(default=False)

    class Meta:
        ordering = ["campaign_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "category"], name="component_category_once"
            ),
            models.CheckConstraint(condition=Q(amount_krw__gt=0), name="component_amount_positive"),
            models.CheckConstraint(
                condition=Q(min_order_krw__gte=0), name="component_min_order_nonneg"
            ),
            models.CheckConstraint(
                condition=(Q(expires_at__isnull=False) & Q(valid_days__isnull=True))
                | (Q(expires_at__isnull=True) & Q(valid_days__gt=0)),
                name="component_one_expiry_rule",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.category}:{self.amount_krw}"
