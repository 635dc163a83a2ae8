"""The login page: Django's form and view around the throttled sign-in service
(studio.accounts.login), which decides; here only the HTTP side of its answers."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpResponse

from studio.accounts.login import (
    DEVICE_COOKIE,
    DEVICE_COOKIE_MAX_AGE,
    LoginClient,
    LoginFailed,
    LoginSuccess,
    LoginThrottled,
    password_login,
)


class LoginForm(AuthenticationForm):
    """Signs in through `password_login` instead of calling `authenticate` itself."""

    retry_after: int | None = None
    success: LoginSuccess | None = None

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            request = self.request  # LoginView passes it; without one: no address, no cookie
            client = LoginClient(
                address=request.META.get("REMOTE_ADDR", "") if request is not None else "",
                device_cookie=request.COOKIES.get(DEVICE_COOKIE, "") if request else "",
            )
            try:
                self.success = password_login(username=username, password=password, client=client)
            except LoginThrottled as refused:
                self.retry_after = refused.retry_after
                raise forms.ValidationError(refused.message, code="throttled") from None
            except LoginFailed:
                raise self.get_invalid_login_error() from None
            self.user_cache = self.success.user
        return self.cleaned_data


class LoginView(auth_views.LoginView):
    template_name = "frontend/login.html"
    redirect_authenticated_user = True
    form_class = LoginForm

    def form_invalid(self, form: Any) -> HttpResponse:
        response = super().form_invalid(form)
        if form.retry_after is not None:
            response.status_code = 429
            response["Retry-After"] = str(form.retry_after)
        return response

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        # This browser has now signed in to the account: a lock-out earned by others, from
        # browsers without this cookie, does not stop it (studio/accounts/login.py).
        response.set_cookie(
            DEVICE_COOKIE,
            form.success.device_cookie,
            max_age=DEVICE_COOKIE_MAX_AGE,
            path=self.request.path,
            secure=settings.SESSION_COOKIE_SECURE,
            httponly=True,
            samesite="Lax",
        )
        return response
