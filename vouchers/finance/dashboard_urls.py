from django.contrib.auth import views as auth_views
from django.urls import path

from vouchers.finance.dashboard import DashboardView

urlpatterns = [
    path("", DashboardView.as_view(), name="dashboard"),
    path("login/", auth_views.LoginView.as_view(template_name="finance/login.html"),
         name="dashboard-login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="dashboard-login"),
         name="dashboard-logout"),
]
