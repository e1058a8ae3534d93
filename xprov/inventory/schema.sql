-- xprov inventory schema (MySQL / MariaDB). Create it with `xprov db init -c CONFIG`,
-- or run this file with the mysql client. Statements are separated by ";" at line ends.
--
-- phones: one row per device.
--   mac      the device's MAC in any common notation (xprov normalises it to 12 hex digits)
--   vendor   'yealink' or 'linksys' (Linksys/Cisco SPA)
--   model    e.g. 'T46G', 'SPA504G'
--   grp      the operator's grouping (a customer, a site); templates see it as phone.group
--   vars     a JSON object of extra template variables for this phone, or NULL
--   http_user, http_password
--            the phone's own credentials for its files (HTTP Digest), or NULL; unique
CREATE TABLE IF NOT EXISTS phones (
  mac            VARCHAR(17)   NOT NULL PRIMARY KEY,
  vendor         VARCHAR(16)   NOT NULL,
  model          VARCHAR(32)   NOT NULL,
  grp            VARCHAR(64)   NULL,
  vars           TEXT          NULL,
  http_user      VARCHAR(64)   NULL UNIQUE,
  http_password  VARCHAR(128)  NULL
) DEFAULT CHARSET = utf8mb4;

-- phone_lines: the SIP accounts of a device, one row per line.
--   number        the line (account) number, 1..16
--   sip_user      the SIP user name
--   auth_user     the authentication user (NULL: sip_user)
--   password      the SIP password (never logged by xprov)
--   display_name  NULL: sip_user;  label: NULL: display_name
CREATE TABLE IF NOT EXISTS phone_lines (
  mac           VARCHAR(17)       NOT NULL,
  number        TINYINT UNSIGNED  NOT NULL,
  sip_user      VARCHAR(64)       NOT NULL,
  auth_user     VARCHAR(64)       NULL,
  password      VARCHAR(128)      NOT NULL,
  display_name  VARCHAR(128)      NULL,
  label         VARCHAR(64)       NULL,
  PRIMARY KEY (mac, number),
  CONSTRAINT phone_lines_phone FOREIGN KEY (mac) REFERENCES phones (mac)
    ON DELETE CASCADE ON UPDATE CASCADE
) DEFAULT CHARSET = utf8mb4;
