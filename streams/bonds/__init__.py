"""The rules of Japanese government bonds: business days and accrued interest (pure).

Issue 20 builds on these: the security master, settlement dates, coupons and
redemption. docs/domain notes: ``../shared/domain-review.md`` §2.1–2.2.
"""
