"""The modem manuals' error tables, as data, and how to react to each code.

Owns every numeric error table the drivers meet: ``+CME ERROR`` and
``+CMS ERROR`` (SIM767XX manual, ch. 25), CMQTT ``<err>`` (ch. 16.3.1, same
list in the A7600 MQTT note 2.2.1), SSL/CCH ``<err>`` (ch. 17.3.1), TCP/IP
``<err>`` of NETOPEN/CIPOPEN (ch. 13.3.2) and ``+IP ERROR: <err_info>``
(ch. 13.3.1), the ``+CMQTTCONNLOST`` causes (ch. 16.4) and the SIM800
``+SMSUB/+SMPUB/+SMUNSUB`` status (SIM800 MQTT note 3.4-3.6).

Each table is one text constant, one entry per line::

    <code> <class letter> [<short name>|]<the manual's meaning, verbatim>

Class letters: O success (code 0), T TRANSIENT, S STATE, F FATAL.  The short
name is left out where the manual's meaning is already short (the name is
then the meaning).  Text, not tuples of tuples, because it is what costs
least RAM on an ESP32 without PSRAM: one object per table instead of an
object and four slots per entry (import cost on the 64-bit unix port: 35 KB
as flat tuples, 13 KB as text); frozen into the firmware it costs no RAM.
Lookups run only on error paths, so a text scan is fine.

Classes say what the caller does next: ``TRANSIENT`` retry with backoff;
``STATE`` already in / not in that state (a state fixer runs, or it counts as
success on re-init); ``FATAL`` configuration, credentials or certificates:
surface to the app, stop looping; ``SUCCESS`` for the tables' code 0;
``UNKNOWN`` for a code no table has.
"""

from .compat import const

SUCCESS = const(0)
TRANSIENT = const(1)
STATE = const(2)
FATAL = const(3)
UNKNOWN = const(4)

CLASS_NAMES = ("SUCCESS", "TRANSIENT", "STATE", "FATAL", "UNKNOWN")
_LETTERS = const("OTSF")  # index = class

# SIM767XX AT manual, 25.3 "Summary of CME ERROR Codes" (3GPP 27.007 list as
# SIMCom gives it).  PIN/PUK, barring and subscription rejects are FATAL;
# registration rejects tied to the current cell/PLMN (111-115) are TRANSIENT
# because a vehicle moves; CFUN/PDP-context state problems are STATE.
_CME = const("""
1 T no connection to phone
2 T phone-adaptor link reserved
3 S operation not allowed
4 F operation not supported
5 F PH-SIM PIN required
6 F PH-FSIM PIN required
7 F PH-FSIM PUK required
10 F SIM not inserted
11 F SIM PIN required
12 F SIM PUK required
13 F SIM failure
14 T SIM busy
15 F SIM wrong
16 F incorrect password
17 F SIM PIN2 required
18 F SIM PUK2 required
20 F memory full
21 F invalid index
22 F not found
23 F memory failure
24 F text str too long
25 F invalid characters
26 F dial str too long
27 F invalid characters in dial str
30 T no nw service
31 T nw timeout
32 T emergency calls only|network not allowed - emergency call only
40 F net PIN required|network personalization PIN required
41 F net PUK required|network personalization PUK required
42 F subnet PIN required|network subset personalization PIN required
43 F subnet PUK required|network subset personalization PUK required
44 F SP PIN required|service provider personalization PIN required
45 F SP PUK required|service provider personalization PUK required
46 F corp PIN required|corporate personalization PIN required
47 F corp PUK required|corporate personalization PUK required
48 F hidden key required
49 F EAP method does not support
50 F Incorrect parameters
51 S currently disabled|command implemented but currently disabled
52 T command aborted by user
53 S not attached (CFUN)|not attached to network due to MT functionality restrictions
54 S emergency only (CFUN)|modem not allowed - MT restricted to emergency calls only
55 S not allowed (CFUN)|operation not allowed because of MT functionality restrictions
56 F fixed dial number only allowed
57 T temporarily out of service|temporarily out of service due to other MT usage
58 F language/alphabet not supported
59 F unexpected data value
60 T system failure
61 F data missing
62 F call barred
63 T MWI subscription failure|message waiting indication subscription failure
100 T unknown error
103 F illegal MS
106 F illegal ME
107 F GPRS services not allowed
108 F GPRS and non-GPRS not allowed|GPRS services and non GPRS services not allowed
111 T PLMN not allowed
112 T Location area not allowed
113 T roaming not allowed|Roaming not allowed in this location area
114 T GPRS not allowed in PLMN|GPRS services not allowed in this plmn
115 T no suitable cells|No suitable cells in location area
121 T PTI mismatch
122 T Congestion
126 T Insufficient resources
127 F Mission or unknown APN
128 F unknown PDP address/type|Unknown pdp address or pdn type
129 F User authentication failed
130 T activation rejected|Activation rej by CGSN Serving GW or PDN GW
131 T Request rej, unspecified
132 F Service option not supported
133 F option not subscribed|requested service option not subscribed
134 T option temporarily out of order|service option temporarily out of order
135 T PTI already in use
136 T Regular deactivation
137 F EPS QoS not accepted
140 F Feature not supported
141 F TFT semantic error|Semantic errors in the TFT operation
142 F TFT syntax error|Syntactical errors in the TFT operation
143 F Invalid EPS bearer identity
144 F packet filter semantic error|Semantic errors in packet filters
145 F packet filter syntax error|Syntactical errors in packet filters
146 S context without TFT active|PDP context without TFT already activated
148 T unspecified GPRS error
149 F PDP authentication failure
150 F invalid mobile class
171 S last PDN disconnect refused|Last PDN disconnection not allowed
172 T Semantically incorrect message
173 T mandatory IE error|mandatory information element error
174 T IE not implemented|information element non exists or not implemented
175 T Conditional ie error
176 T Protocol error unspecified
177 F Operator determined barring
178 S max PDP contexts|max num of pdp contexts reached
179 F APN not supported here|Requested APN not supported in current rat and PLMN combination
180 T bearer control mode violation|Request rejected bearer control mode violation
181 F Unsupported qci value
182 T control plane congested|User data transmission via control plane is congested
184 T Invalid PTI value
186 T not compatible with state|Message not compatible with protocol state
190 T Network failure
191 T Reactivation requested
192 F IPv4 only|PDN type IPv4 only allowed
193 F IPv6 only|PDN type IPv6 only allowed
194 F single address only|Single address bearers only allowed
195 T collision with network|Collision with network initiated request
196 F IPv4v6 only|PDN type IPv4v6 only allowed
197 F non-IP only|PDN type non-IP only allowed
198 F Bearer handling not supported
199 F APN restriction incompatible|APN restriction value incompatible with active PDP context
200 S multiple access refused|Multiple accesses to a PDN connection not allowed
201 T ESM information not received
202 S PDN connection does not exist
203 S one PDN per APN|Multiple PDN connections for a given APN not allowed
208 T not compatible with state|Message type not compatible with protocol state
209 T IE not implemented|Information element non-existent or not implemented
301 T Internal error base
302 T UE busy
303 S ue not power on
304 S pdn not active
305 F pdn not valid
306 F pdn type invalid
307 F pdn leak param
308 T ue fail
309 F PDN type/APN duplicate|pdn type and APN duplicate used
310 F PAP and EITF not matched
311 S SIM PIN disabled
312 S SIM PIN already enabled
313 F SIM PIN wrong format
512 F parameter not configured|Required parameter not configured
513 T TUP not registered
514 T AT internal error
515 S CID is active
516 S Incorrect state for command
517 F CID is invalid
518 S CID is not active
520 S Deactivate the last active CID
521 S CID is not defined
522 T UART parity error
523 T UART frame error
524 S UE is in minimal function mode
525 T aborted: in processing|AT command aborted: in processing
526 T aborted: error|AT command aborted: error
527 T Command interrupted
528 F Configuration conflicts
529 T During FOTA updating
530 S Not the AT allocated socket
531 F USIM PIN is blocked
532 F USIM PUK is blocked
533 F Not mipi module
534 F File not found
535 F conditions of use not satisfied
536 T AT UART buffer error
537 T Back off timer is running
538 S CID defined count > 0|CID defined counter value greater than ZERO
539 S CID not defined
540 S CID active count > 0|CID active counter value greater than ZERO
""")

# SIM767XX AT manual, 25.4 "Summary of CMS ERROR Codes".
_CMS = const("""
300 T ME failure
301 T SMS service of ME reserved
302 S operation not allowed
303 F operation not supported
304 F invalid PDU mode parameter
305 F invalid text mode parameter
310 F (U)SIM not inserted
311 F (U)SIM PIN required
312 F PH-(U)SIM PIN required
313 F (U)SIM failure
314 T (U)SIM busy
315 F (U)SIM wrong
316 F (U)SIM PUK required
317 F (U)SIM PIN2 required
318 F (U)SIM PUK2 required
320 F memory failure
321 F invalid memory index
322 F memory full
330 F SMSC address unknown
331 T no network service
332 T network timeout
340 S no CNMA expected|no +CNMA acknowledgement expected
500 T unknown error
""")

# SIM767XX AT manual, 16.3.1 "Description of <err>" (MQTT(S)); the A7600
# MQTT(S) application note 2.2.1 has the identical list, 0-35.  Client-slot
# bookkeeping (19-21, 23) and "no connection" (11: reconnect) are STATE;
# broker refusals for credentials/identity/protocol and missing certificates
# are FATAL; 32 (handshake) stays TRANSIENT: on a lossy cellular link it
# happens without any configuration fault, and the app sees the count.
_CMQTT = const("""
0 O operation succeeded
1 T failed
2 F bad UTF-8 string
3 T sock connect fail
4 T sock create fail
5 T sock close fail
6 T message receive fail
7 T network open fail
8 T network close fail
9 S network not opened
10 F client index error
11 S no connection
12 F invalid parameter
13 F not supported operation
14 T client is busy
15 T require connection fail
16 T sock sending fail
17 T timeout
18 F topic is empty
19 S client is used
20 S client not acquired
21 S client not released
22 F length out of range
23 S network is opened
24 T packet fail
25 T DNS error
26 T socket is closed by server
27 F unaccepted protocol version|connection refused: unaccepted protocol version
28 F identifier rejected|connection refused: identifier rejected
29 T server unavailable|connection refused: server unavailable
30 F bad user name or password|connection refused: bad user name or password
31 F not authorized|connection refused: not authorized
32 T handshake fail
33 F not set certificate
34 F Open session failed
35 S Disconnect from server failed
""")

# SIM767XX AT manual, 16.4: <cause> of "+CMQTTCONNLOST: <client_index>,<cause>"
# (A7600 MQTT(S) note 2.2.2.1).  All mean "connect again"; 3 needs the
# network (CMQTTSTART) back first, hence STATE.
_CONNLOST = const("""
1 T Socket is closed passively.
2 T Socket is reset.
3 S Network is closed.
""")

# SIM767XX AT manual, 17.3.1 "Description of <err>" (SSL, AT+CCH*).
_SSL = const("""
0 O Operation succeeded
1 S Alerting state(reserved)
2 T Unknown error
3 T Busy
4 T Peer closed
5 T Operation timeout
6 T Transfer failed
7 T Memory error
8 F Invalid parameter
9 T Network error
10 T Open session error
11 S State error
12 T Create socket error
13 T Get DNS error
14 T Connect socket error
15 T Handshake error
16 T Close socket error
17 S Nonet
18 T Send data timeout
19 F Not set certificates
""")

# SIM767XX AT manual, 13.3.2 "Description of <err>": the result of
# "+NETOPEN: <err>", "+CIPOPEN: <link_num>,<err>", "+CIPCLOSE: ..." etc.
_NET = const("""
0 O operation succeeded
1 T Network failure
2 S Network not opened
3 F Wrong parameter
4 F Operation not supported
5 T Failed to create socket
6 T Failed to bind socket
7 S TCP server is already listening
8 T Busy
9 S Sockets opened
10 T Timeout
11 T DNS parse failed|DNS parse failed for AT+CIPOPEN
12 T Unknown error
""")

# SIM767XX AT manual, 13.3.1 "Description of <err_info>": "+IP ERROR: <err_info>",
# a string by default (AT+CIPCCFG errMode 1), the number with errMode 0;
# code_for("IP", text) maps the string back.
_IP = const("""
0 T Connection time out
1 T Bind port failed
2 T Port overflow
3 T Create socket failed
4 S Network is already opened
5 S Network is already closed
6 S No clients connected
7 S No active client
8 S Network not opened
9 F Client index overflow
10 S Connection is already created
11 S Connection is not created
12 F Invalid parameter
13 F Operation not supported
14 T DNS query failed
15 T TCP busy
16 S sockets still open|Net close failed for socket opened
17 T Sending time out
18 T network error on send|Sending failure for network error
19 T network error on open|Open failure for network error
20 S Server is already listening
21 T Operation failed
22 S No data
""")

# SIM800 Series MQTT Application Note V1.03, 3.4-3.6: <status> of the
# "+SMSUB/+SMPUB/+SMUNSUB: <packet_id>,<status>" URCs.  The note gives no
# other MQTT result codes (failures are "+CME ERROR: <err>", see CME).
_SM = const("""
0 O Success
1 T Time Out
2 T Other Error
""")

KINDS = ("CME", "CMS", "CMQTT", "CONNLOST", "SSL", "NET", "IP", "SM")
_TABLES = const((_CME, _CMS, _CMQTT, _CONNLOST, _SSL, _NET, _IP, _SM))


def _table(kind):
    for i in range(len(KINDS)):
        if KINDS[i] == kind:
            return _TABLES[i]
    raise ValueError("errtab: unknown kind %r (known: %s)" % (kind, " ".join(KINDS)))


def _line(kind, code):
    # The rest of code's line after "<code> ", i.e. "<letter> [name|]meaning", or None.
    t = _table(kind)
    if not isinstance(code, int):
        raise TypeError("errtab: code must be int, got %r" % (code,))
    key = "\n%d " % code
    i = t.find(key)
    if i < 0:
        return None
    i += len(key)
    return t[i : t.find("\n", i)]


def entries(kind):
    """Every entry of table ``kind`` as ``(code, cls, name, meaning)``, in the manual's order."""
    out = []
    for ln in _table(kind).split("\n"):
        if ln:
            sp = ln.find(" ")
            rest = ln[sp + 3 :]
            bar = rest.find("|")
            m = rest[bar + 1 :]
            out.append((int(ln[:sp]), _LETTERS.find(ln[sp + 1]), rest[:bar] if bar >= 0 else m, m))
    return out


def lookup(kind, code):
    """``(name, meaning, cls)`` of ``code`` in table ``kind``, or None for an unknown code.

    ValueError for an unknown kind, TypeError for a code that is not an int.
    """
    ln = _line(kind, code)
    if ln is None:
        return None
    rest = ln[2:]
    bar = rest.find("|")
    m = rest[bar + 1 :]
    return (rest[:bar] if bar >= 0 else m), m, _LETTERS.find(ln[0])


def cls_of(kind, code):
    """The class (SUCCESS/TRANSIENT/STATE/FATAL) of ``code``; UNKNOWN when no entry."""
    ln = _line(kind, code)
    return UNKNOWN if ln is None else _LETTERS.find(ln[0])


def describe(kind, code):
    """``"CMQTT 14 (client is busy): client is busy"``; never raises (error paths use it)."""
    try:
        e = lookup(kind, code)
    except (ValueError, TypeError):
        e = None
    if e is None:
        return "%s %s (unknown code)" % (kind, code)
    return "%s %s (%s): %s" % (kind, code, e[0], e[1])


def code_for(kind, text):
    """The code whose meaning (or else short name) is ``text``, case-insensitive; or None.

    For verbose results: ``+CME ERROR: SIM busy`` (AT+CMEE=2) and
    ``+IP ERROR: Network is already opened`` carry text, not the number.
    """
    want = text.strip().lower()
    es = entries(kind)
    for e in es:  # meanings first: a few short names repeat
        if e[3].lower() == want:
            return e[0]
    for e in es:
        if e[2].lower() == want:
            return e[0]
    return None
