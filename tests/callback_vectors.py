"""The official DingTalk callback-crypto test vectors (reference/dingtalk-callback-vectors.md),
shared by the bridge's crypto tests and the simulator's own."""

# Vector A: the check_url event (DingCallbackCrypto3.py), character for character.
A_TOKEN = "mryue"
A_AES_KEY = "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7"
A_OWNER = "ding6ccabc44d2c8d38b"
A_SIGNATURE = "03044561471240d4a14bb09372dfcfd4fd0e40cb"
A_TIMESTAMP = "1608001896814"
A_NONCE = "WL4PK6yA"
A_ENCRYPT = (
    "0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDCYxxO"
    "K+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3"
)
A_PREFIX = b"l7Y3EcX2CU5w8av3"
A_MESSAGE = '{"EventType":"check_url"}'
# Vector B: an encrypted "success" (DingTalkCrypto.go).
B_TOKEN = "tokenxxxx"
B_AES_KEY = "o1w0aum42yaptlz8alnhwikjd3jenzt9cb9wmzptgus"
B_OWNER = "dingxxxxxx"
B_SIGNATURE = "f36f4ba5337d426c7d4bca0dbcb06b3ddc1388fc"
B_TIMESTAMP = "1605695694141"
B_NONCE = "WelUQl6bCqcBa2fM"
B_ENCRYPT = (
    "X1VSe9cTJUMZu60d3kyLYTrBq5578ZRJtteU94wG0Q4Uk6E/wQYeJRIC0/UFW5Wkya1Ihz9oXAdLlyC9TRaqsQ=="
)
B_PREFIX = b"WelUQl6bCqcBa2fM"
