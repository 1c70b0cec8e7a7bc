"""Stored reconciliation results, so the dashboard and auditors see the latest one."""

from django.db import models


class ReconciliationReport(models.Model):
    campaign = models.ForeignKey("vouchers.Campaign", null=True, on_delete=models.PROTECT)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=120)
    ok = models.BooleanField()
    checks = models.JSONField()

    class Meta:
        indexes = [models.Index(fields=["campaign", "-created_at"])]
